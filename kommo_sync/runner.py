"""`run --accounts`: each account a `kommo-sync run --json` process of its own, at most
`parallel` at a time. An account's failure, crash or hang touches no other; its stderr lines
reach ours labelled with its name. A stop (SIGTERM, SIGINT to the runner) is forwarded to the
runs going on, which end at their next safe point (a second one: at once); accounts not yet
started are not started; the runner waits GRACE_SECONDS for them, then kills what is left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from kommo_sync.accounts import Account
from kommo_sync.clock import Clock, StopFlag

GRACE_SECONDS = 30.0  # after a stop, how long the runs going on get to reach a safe point
POLL_SECONDS = 0.2  # how often the runner looks at its children while waiting


@dataclass(frozen=True)
class Outcome:
    """How one account's process ended: its exit code, its JSON document (a run report or an
    error object; None when it printed none) and how long it took."""

    account: Account
    exit_code: int
    document: dict[str, Any] | None
    seconds: float
    started: bool = True

    @property
    def label(self) -> str:
        """The account's own label once its config was read, else its folder's name."""
        named = (self.document or {}).get("account")
        return str(named) if named else self.account.label


class Runner:
    """Runs accounts in child processes; `write_line` takes each labelled stderr line (called
    from the pool's threads, one line at a time)."""

    def __init__(
        self,
        args: Sequence[str],
        parallel: int,
        write_line: Callable[[str], None],
        clock: Clock,
        label_lines: bool = True,
        metrics_file: Path | None = None,
    ):
        self.args, self.parallel, self.clock = tuple(args), parallel, clock
        self.write_line, self.label_lines = write_line, label_lines
        self.metrics_file = metrics_file
        self.children: dict[str, subprocess.Popen[str]] = {}
        self.signals = 0  # how many the runner got (forward counts them)
        self.sent: dict[str, int] = {}  # how many each child got (the waiting loop sends them)
        self._writing = threading.Lock()

    @property
    def stop(self) -> StopFlag:
        return self.clock.stop

    def run(self, accounts: Sequence[Account]) -> list[Outcome]:
        """Every account's outcome, in the order given."""
        with ThreadPoolExecutor(self.parallel, thread_name_prefix="account") as pool:
            futures = [pool.submit(self._one, account) for account in accounts]
            self._wait(futures)
            return [future.result() for future in futures]

    def forward(self) -> None:
        """From the signal handler: count the signal, which the waiting loop passes on (a
        handler must take no lock, and one sender never signals a child twice by mistake)."""
        self.signals += 1

    def _wait(self, futures: list[Future[Outcome]]) -> None:
        deadline: float | None = None
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            self._pass_on()
            if self.stop.requested and deadline is None:
                deadline = self.clock.monotonic() + GRACE_SECONDS
            if deadline is not None and self.clock.monotonic() > deadline:
                for child in list(self.children.values()):
                    child.kill()

    def _pass_on(self) -> None:
        """Each run going on gets as many of the runner's signals as it has not yet had (the
        first stops it at a safe point, a second at once)."""
        signum = self.stop.signum
        for key, child in list(self.children.items()):
            while signum and self.sent.get(key, 0) < min(self.signals, 2) and child.poll() is None:
                child.send_signal(signum)
                self.sent[key] = self.sent.get(key, 0) + 1

    def _one(self, account: Account) -> Outcome:
        if self.stop.requested:
            return Outcome(account, 128 + (self.stop.signum or 0), None, 0.0, started=False)
        began = self.clock.monotonic()
        with tempfile.TemporaryFile("w+", encoding="utf-8") as stdout:
            with self._child(account, stdout) as child:
                for line in child.stderr or ():
                    self._write(account, line.rstrip("\n"))
                code = child.wait()
            stdout.seek(0)
            document = _last_json(stdout.read())
        return Outcome(account, code, document, self.clock.monotonic() - began)

    @contextmanager
    def _child(self, account: Account, stdout: IO[str]) -> Iterator[subprocess.Popen[str]]:
        """The account's run in its own session, so a terminal's Ctrl-C reaches the runner
        alone (which forwards it once: a second signal would stop the run at once)."""
        command = [
            sys.executable, "-m", "kommo_sync.cli", "--config", str(account.config.resolve()),
            "run", "--json", *self.args,
        ]  # fmt: skip
        if self.metrics_file is not None:
            command += ["--metrics-file", str(account_metrics_file(self.metrics_file, account))]
        child = subprocess.Popen(
            command,
            cwd=account.config.parent,
            env=os.environ.copy(),
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        key = str(account.config)
        self.children[key] = child
        try:
            yield child
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            self.children.pop(key, None)

    def _write(self, account: Account, line: str) -> None:
        with self._writing:
            self.write_line(f"[{account.label}] {line}" if self.label_lines else line)


def account_metrics_file(path: Path, account: Account) -> Path:
    """Each account's metrics file beside the one given (`kommo_sync.prom` →
    `kommo_sync-acme.prom`): the textfile collector reads every `*.prom` of its folder."""
    return path.with_name(f"{path.stem}-{account.label}{path.suffix or '.prom'}")


def _last_json(text: str) -> dict[str, Any] | None:
    """The document `--json` printed: its last line that parses as a JSON object."""
    for line in reversed(text.splitlines()):
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict):
            return document
    return None
