"""SIGTERM and SIGINT for the CLI. The first asks the run to stop at its next safe point (the
Clock's stop flag: sleeps, job waits and the gaps between requests raise Interrupted); a second
ends the process at once. Installed by the CLI only, for the length of one run: a library
user's process-wide signal handling is never touched. The multi-account runner forwards each
signal to its runs instead, which apply the same rule."""

from __future__ import annotations

import functools
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from kommo_sync.clock import StopFlag

SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stop_on_signals(stop: StopFlag, forward: Callable[[], None] | None = None) -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT request `stop` (handlers exist on the main thread
    only); with `forward`, every signal is also passed on by it, and none ends the process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    ours = (
        functools.partial(_pass_on, stop, forward) if forward else functools.partial(_handle, stop)
    )
    previous = {sig: signal.signal(sig, ours) for sig in SIGNALS}
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


def _pass_on(
    stop: StopFlag, forward: Callable[[], None], signum: int, frame: FrameType | None
) -> None:
    stop.request(signum)
    forward()
