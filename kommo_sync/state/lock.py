"""The lock beside the state file: two runs (a cron overlap) never share the state."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kommo_sync.clock import iso_utc
from kommo_sync.errors import ConfigError, LockedError


@dataclass(frozen=True)
class LockHolder:
    """Who holds the lock, as its file says (None fields when the file says nothing readable)."""

    pid: int | None = None
    host: str | None = None
    started_at: int | None = None

    def describe(self) -> str:
        """` (pid 12 on web-1, since 2026-01-01T00:00:00+00:00)`, or nothing when unknown."""
        if self.pid is None or self.started_at is None:
            return ""
        return f" (pid {self.pid} on {self.host}, since {iso_utc(self.started_at)})"


class FileLock:
    """An exclusive, non-blocking lock beside the state file (cron overlap protection). Its file
    (mode 0600) names the holder, for a run that finds it held and for `status`; it is emptied
    on release."""

    def __init__(self, path: Path):
        self.path = path
        self.handle: Any = None

    @classmethod
    def beside(cls, state: Path) -> FileLock:
        return cls(state.with_name(state.name + ".lock"))

    def acquire(self, started_at: float | None = None) -> None:
        """Take the lock (LockedError naming the holder when another run has it) and sign it."""
        self.handle = self._open()
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder_in(self.handle)
            self.handle.close()
            self.handle = None
            raise LockedError(
                f"another kommo-sync run holds {self.path}{holder.describe()}; "
                "try again when it ends"
            ) from None
        moment = time.time() if started_at is None else started_at
        self._write(
            json.dumps(
                {"pid": os.getpid(), "host": socket.gethostname(), "started_at": int(moment)}
            )
        )

    def release(self) -> None:
        if self.handle:
            self._write("")
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None

    def holder(self) -> LockHolder | None:
        """Who holds the lock, or None when it is free. Creates and writes nothing: a shared
        lock probes it for an instant."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                return _probe(handle)
        except FileNotFoundError:
            return None

    def _open(self) -> Any:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = os.fdopen(
                os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), "r+", encoding="utf-8"
            )
            os.fchmod(handle.fileno(), 0o600)  # a lock file left by an earlier release may be 0644
            return handle
        except OSError as exc:  # the state's folder is a file, or not ours to write
            raise ConfigError("state", f"cannot create {self.path}: {exc.strerror}") from None

    def _write(self, text: str) -> None:
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(text)
        self.handle.flush()


def _probe(handle: Any) -> LockHolder | None:
    """The holder named in an open lock file, or None when a shared lock is granted (free)."""
    try:
        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder_in(handle)
    fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def _holder_in(handle: Any) -> LockHolder:
    handle.seek(0)
    try:
        data = json.loads(handle.read() or "{}")
        return LockHolder(int(data["pid"]), str(data["host"]), int(data["started_at"]))
    except (ValueError, KeyError, TypeError):  # empty, or written half-way this instant
        return LockHolder()
