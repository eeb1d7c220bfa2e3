"""A destination's own small key/value memory in the state (managed tags, ids, settings)."""

from __future__ import annotations

import threading
from typing import Any


class DestinationMemory:
    """A destination's own small key/value memory in the state file (managed tags, ids…).

    Pushes run on a worker thread that must not touch the state file, so writes are buffered
    here and the engine flushes them from the main thread when it records the push.
    """

    def __init__(self, state: Any, destination: str):
        self.state, self.destination = state, destination
        self.pending: dict[str, Any] = {}
        self.lock = threading.Lock()

    def get(self, key: str, default: Any = None) -> Any:
        with self.lock:
            if key in self.pending:
                return self.pending[key]
        return self.state.meta(self.destination, key, default)

    def set(self, key: str, value: Any) -> None:
        with self.lock:
            self.pending[key] = value

    def flush(self) -> None:
        """Write buffered values; call on the thread that owns the state."""
        with self.lock:
            pending, self.pending = self.pending, {}
        if pending:
            with self.state.transaction():
                for key, value in pending.items():
                    self.state.set_meta(self.destination, key, value)
