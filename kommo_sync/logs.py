"""Log records that say which account, run and phase wrote them, as text or one JSON object a
line.

The context is process-wide, not per thread: one process runs one run at a time, and the push
workers' records belong to the phase the main thread is in.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

_context: dict[str, Any] = {"account": None, "run_id": None, "phase": None}
TEXT_FORMAT = "%(asctime)s %(levelname)s%(where)s %(name)s: %(message)s"
EXTRA_FIELDS = ("elapsed", "counts")


def bind(**values: Any) -> None:
    """Set the account, run id and/or phase stamped on every record from now on."""
    _context.update(values)


def reset() -> None:
    bind(account=None, run_id=None, phase=None)


class ContextFilter(logging.Filter):
    """Stamps each record with the account, run id and phase (and `where`, their text form)."""

    def filter(self, record: logging.LogRecord) -> bool:
        account, run_id, phase = _context["account"], _context["run_id"], _context["phase"]
        record.account, record.run_id, record.phase = account, run_id, phase
        parts = [account or "", f"run {run_id}" if run_id is not None else "", phase or ""]
        record.where = f" [{', '.join(p for p in parts if p)}]" if any(parts) else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ms), level, logger, account, run_id, phase, message
    and any structured extras (a heartbeat's counts and elapsed seconds)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": utc_millis(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "account": getattr(record, "account", None),
            "run_id": getattr(record, "run_id", None),
            "phase": getattr(record, "phase", None),
            "message": record.getMessage(),
        }
        line.update({key: getattr(record, key) for key in EXTRA_FIELDS if hasattr(record, key)})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def utc_millis(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def json_line(level: int, logger: str, message: str) -> str:
    """A record as --log-format json writes it, for lines that bypass logging (the CLI's last
    word)."""
    record = logging.LogRecord(logger, level, __file__, 0, message, None, None)
    ContextFilter().filter(record)
    return JsonFormatter().format(record)
