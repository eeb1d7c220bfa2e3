"""`--metrics-file`: Prometheus text for node-exporter's textfile collector, written after each
run (a failed one too), atomically: a temporary file in the same folder, then a rename, so the
collector never reads half a file.

Runs by status and the last success come from the state's runs table (the truth); requests and
429s per vendor are counted by the HTTP base (kommo_sync.http.TRAFFIC) and kept across runs by
adding this run's to the totals read back from the previous file (a lost file is a counter reset,
which Prometheus handles). Every series carries the account label.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kommo_sync.app import peek_state
from kommo_sync.clock import Clock
from kommo_sync.config_reader import reason_of
from kommo_sync.exits import EXIT_LOCKED, EXIT_OK, EXIT_REJECTED
from kommo_sync.http import TRAFFIC
from kommo_sync.state import StateLocation

log = logging.getLogger(__name__)

KINDS = ("permanent", "transient")  # always written, so a rejection-free run reads as 0
COUNTERS = {"requests": "kommo_sync_requests_total", "429": "kommo_sync_429_total"}
COUNTER_LINE = re.compile(
    r'^(kommo_sync_requests_total|kommo_sync_429_total)\{account="([^"]*)",vendor="([^"]*)"\} '
    r"(\d+(?:\.0+)?)$"
)
LAST_DURATION = "How long the last run took."
LAST_SUCCESS = "kommo_sync_last_success_timestamp_seconds"
LAST_SUCCESS_HELP = "When the last successful run (exit 0 or 1) finished."
RUN_COUNTS = (
    ("kommo_sync_contacts_pulled", "pulled_contacts", "Contacts read from Kommo by the last run."),
    ("kommo_sync_contacts_changed", "changed_contacts", "Contacts the last run found changed."),
    ("kommo_sync_contacts_pushed", "pushed", "Records the last run pushed to destinations."),
)


@dataclass(frozen=True)
class RunMetrics:
    """What one file tells: the last run, the state's run totals, the traffic totals."""

    account: str
    exit_code: int
    duration_seconds: float
    runs: Mapping[str, int]
    last_success: int | None
    traffic: Mapping[tuple[str, str], int]  # (vendor, "requests" | "429") → total
    counts: Mapping[str, int] | None = field(default=None)  # None: it ended before counting


def render(m: RunMetrics) -> str:
    """The text format: HELP and TYPE lines, then the samples of each family."""
    out: list[str] = []
    account = f'account="{_escape(m.account)}"'

    def family(name: str, kind: str, text: str, samples: Sequence[tuple[str, float]]) -> None:
        out.extend((f"# HELP {name} {text}", f"# TYPE {name} {kind}"))
        out.extend(f"{name}{{{account}{labels}}} {_number(value)}" for labels, value in samples)

    runs = [(f',status="{_escape(s)}"', n) for s, n in sorted(m.runs.items())]
    family("kommo_sync_runs_total", "counter", "Runs in the state, by how they ended.", runs)
    family("kommo_sync_run_duration_seconds", "gauge", LAST_DURATION, [("", m.duration_seconds)])
    if m.counts is not None:
        for name, key, text in RUN_COUNTS:
            family(name, "gauge", text, [("", m.counts.get(key, 0))])
        kinds = [(f',kind="{k}"', n) for k, n in sorted(_rejections(m.counts).items())]
        family("kommo_sync_rejections", "gauge", "Records the last run saw refused.", kinds)
    for what, name in COUNTERS.items():
        rows = sorted((v, n) for (v, w), n in m.traffic.items() if w == what)
        samples = [(f',vendor="{_escape(v)}"', n) for v, n in rows]
        family(name, "counter", f"HTTP {what} by vendor, over all runs.", samples)
    if m.last_success is not None:
        family(LAST_SUCCESS, "gauge", LAST_SUCCESS_HELP, [("", m.last_success)])
    family(
        "kommo_sync_last_exit_code", "gauge", "The exit code of the last run.", [("", m.exit_code)]
    )
    return "\n".join(out) + "\n"


def _rejections(counts: Mapping[str, int]) -> Counter[str]:
    """Rejections by kind, summed over destinations (`<destination>.rejected.<kind>` counts)."""
    kinds: Counter[str] = Counter(dict.fromkeys(KINDS, 0))
    for key, n in counts.items():
        parts = key.split(".")
        if len(parts) == 3 and parts[1] == "rejected":
            kinds[parts[2]] += n
    return kinds


def _number(value: float) -> str:
    """Whole numbers in full (a timestamp must not become 1.76e+09), others as Python writes
    them."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def vendor_label(vendor: str) -> str:
    """The HTTP base's vendor name as a label: 'Mailchimp batch archive' counts as mailchimp."""
    return vendor.split()[0].lower()


def traffic_since(
    before: Mapping[tuple[str, str], int], after: Mapping[tuple[str, str], int]
) -> Counter[tuple[str, str]]:
    """This run's requests and 429s, by vendor label."""
    run: Counter[tuple[str, str]] = Counter()
    for (vendor, what), n in after.items():
        run[(vendor_label(vendor), what)] += n - before.get((vendor, what), 0)
    for vendor, _ in list(run):
        run[(vendor, "429")] += 0  # a vendor that answered no 429 reads as 0
    return run


def previous_totals(path: Path, account: str) -> Counter[tuple[str, str]]:
    """The request and 429 totals of the previous file (none when it is missing or unreadable)."""
    names = {name: what for what, name in COUNTERS.items()}
    totals: Counter[tuple[str, str]] = Counter()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return totals
    for line in lines:
        match = COUNTER_LINE.match(line)
        if match and match.group(2) == account:
            totals[(match.group(3), names[match.group(1)])] += int(float(match.group(4)))
    return totals


def write_atomically(path: Path, text: str) -> None:
    """A temporary file beside `path`, flushed to disk, then renamed over it; mode 0644 (the
    collector may run as another user; the file holds no personal data)."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class Meter:
    """Around one run: the traffic and time at its start, the file written at its end. A held
    lock writes nothing (the run holding it writes its own); a file that cannot be written is
    one warning, never a failed run."""

    def __init__(self, path: Path | None, account: str, state: StateLocation, clock: Clock):
        self.path, self.account, self.state, self.clock = path, account, state, clock
        self.before = TRAFFIC.snapshot()
        self.started = clock.monotonic()

    def finish(self, exit_code: int, counts: Mapping[str, int] | None) -> None:
        if self.path is None or exit_code == EXIT_LOCKED:
            return
        totals = previous_totals(self.path, self.account)
        totals.update(traffic_since(self.before, TRAFFIC.snapshot()))
        runs, last_success = self._from_state()
        duration = self.clock.monotonic() - self.started
        metrics = RunMetrics(self.account, exit_code, duration, runs, last_success, totals, counts)
        try:
            write_atomically(self.path, render(metrics))
        except OSError as exc:
            log.warning("metrics file %s not written: %s", self.path, reason_of(exc))

    def _from_state(self) -> tuple[dict[str, int], int | None]:
        """Runs by status and when the last success finished; nothing when the state cannot be
        read."""
        found = peek_state(
            self.state,
            lambda state: (state.run_counts(), state.last_finished_run((EXIT_OK, EXIT_REJECTED))),
        )
        if found is None:
            return {}, None
        runs, last = found
        return runs, last["finished_at"] if last else None
