"""Destinations set aside for the rest of a run, with the reason.

A destination whose credentials, remote checks or availability fail (down after retries, a
paging loop, a refusal escaping its stage) is set aside: the other destinations, the deal events
and the notes go on; its contacts wait in its queue for the next run. Push workers read it (a
batch for a destination already set aside is not sent), so it is guarded by a lock."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kommo_sync.errors import ConfigError, FatalError, RecordRejected, RetryLater
from kommo_sync.tally import Tally

log = logging.getLogger("kommo_sync.engine")

SETS_ASIDE = (FatalError, ConfigError, RecordRejected, RetryLater)


class SetAside:
    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.reasons: dict[str, str] = {}
        self.by_config: set[str] = set()
        self.lock = threading.Lock()

    def add(self, name: str, reason: str, by_config: bool = False) -> None:
        """Set aside (any thread)."""
        with self.lock:
            if name not in self.reasons and by_config:
                self.by_config.add(name)
            self.reasons.setdefault(name, reason)

    def reason(self, name: str) -> str | None:
        with self.lock:
            return self.reasons.get(name)

    def announce(self, name: str, reason: str, by_config: bool = False) -> None:
        """Set aside on the main thread: logged and counted the first time."""
        if self.reason(name) is None:
            log.warning("%s set aside for this run: %s", name, reason)
            self.tally.count(**{f"{name}.set_aside": 1})
        self.add(name, reason, by_config)

    def guarded(self, name: str, work: Callable[[], Any]) -> Any:
        """Run a destination's stage; a failure of the destination itself sets it aside."""
        if self.reason(name):
            return None
        try:
            return work()
        except SETS_ASIDE as exc:
            self.announce(name, str(exc), by_config=isinstance(exc, ConfigError))
            return None

    def standing(self, names: list[str]) -> dict[str, dict[str, str]]:
        """Each destination's standing for the report: ok, or set aside with reason and cause."""
        standing: dict[str, dict[str, str]] = {}
        for name in names:
            reason = self.reason(name)
            cause = "config" if name in self.by_config else "failure"
            standing[name] = (
                {"status": "set_aside", "reason": reason, "cause": cause}
                if reason
                else {"status": "ok", "reason": ""}
            )
        return standing
