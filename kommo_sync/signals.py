"""SIGTERM and SIGINT for the CLI. The first asks the run to stop at its next safe point (the
Clock's stop flag: sleeps, job waits and the gaps between requests raise Interrupted); a second
ends the process at once. Installed by the CLI only, for the length of one run: a library
user's process-wide signal handling is never touched."""

from __future__ import annotations

import functools
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from kommo_sync.clock import StopFlag

SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stop_on_signals(stop: StopFlag) -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT request `stop` (handlers exist on the main thread
    only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, functools.partial(_handle, stop)) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _handle(stop: StopFlag, signum: int, frame: FrameType | None) -> None:
    """A second signal leaves at once, which is as safe as a kill: SQLite's journal undoes a
    transaction cut short, unrecorded pushes are planned again, and the lock ends with the
    process."""
    if not stop.requested:
        stop.request(signum)
        return
    name = signal.Signals(signum).name
    line = f"kommo-sync: interrupted again by {name}: stopped at once; the next run continues\n"
    os.write(2, line.encode())
    os._exit(128 + signum)
