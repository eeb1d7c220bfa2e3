"""`status --check [--max-age AGE]`: one line and an exit code a monitor (or a Kubernetes
probe job) acts on. A run that ended with exit 0 or 1 counts as a success: one with rejections
still synced everything else and moved its cursor."""

from __future__ import annotations

import re
from typing import Any

from kommo_sync.clock import iso_utc
from kommo_sync.exits import EXIT_OK, EXIT_REJECTED

SUCCESS_CODES = (EXIT_OK, EXIT_REJECTED)
CHECK_RUNS = 1000  # how many of the newest runs the check looks through for a success
AGE = re.compile(r"([1-9][0-9]*)([smhd])")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text: str) -> int:
    """`90m`, `2h`, `1d`, `3600s` as seconds; ValueError otherwise."""
    match = AGE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r}: give a number and a unit (s, m, h or d), like 2h")
    return int(match[1]) * UNIT_SECONDS[match[2]]


def check(runs: list[dict[str, Any]], now: float, max_age: int | None) -> tuple[bool, str]:
    """Healthy, and the line saying why, from the newest runs first (as `status` reads them).
    Without `max_age` only the last finished run matters; with it, only the last success's age.
    A run still in progress is skipped; no run at all fails."""
    finished = [run for run in runs if run["status"] != "running"]
    if max_age is None:
        if not finished:
            return False, "no run has finished yet"
        last = finished[0]
        return last["exit_code"] in SUCCESS_CODES, f"last run {_describe(last, now)}"
    success = next((run for run in finished if run["exit_code"] in SUCCESS_CODES), None)
    if success is None:
        return False, f"last success: never (in the last {len(finished)} runs)"
    age = int(now - success["finished_at"])
    verdict = "within" if age <= max_age else "older than"
    return age <= max_age, f"last success {_describe(success, now)}, {verdict} {_span(max_age)}"


def _describe(run: dict[str, Any], now: float) -> str:
    when = run["finished_at"] or run["started_at"]
    age = _span(int(now - when))
    return (
        f"{run['id']} ended {iso_utc(when)} ({age} ago), {run['status']}, exit {run['exit_code']}"
    )


def _span(seconds: int) -> str:
    """3725 → 1h 2m; under a minute in seconds."""
    if seconds < 60:
        return f"{max(seconds, 0)}s"
    days, rest = divmod(seconds // 60, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = zip((days, hours, minutes), "dhm", strict=True)
    return " ".join(f"{value}{unit}" for value, unit in parts if value)
