"""The benchmarks at a tiny size print every figure (not how fast: that is for the reader)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SYNC_SPEED_LABELS = (
    "per-record baseline",
    "first sync, 30 contacts",
    "incremental, 1 edited",
    "nothing changed",
    "wall ",
    "paced floor",
    "wall/floor",
    "Kommo busy share",
    "tail after the last page",
    "one job round",
    "requests per vendor",
    "429s",
    "  kommo ",
    "  mailchimp ",
    "  klaviyo ",
    "feedback reads (apart): unsubscribes",
    "pushing requests (Mailchimp + Klaviyo)",
    "CPU ",
    "peak RSS",
    "targets:",
    "x paced floor + one job round",
    "<= 8 + 4 per 1,000 changed",
    "paced floor + one job round + 2 s",
    "one read per feedback kind",
    "destination writes 0 = 0",
    "side by side",
)
STATE_SCALE_LABELS = (
    "mirror write",
    "first plan, both destinations",
    "full re-plan after a settings change, both destinations",
    "peak RSS",
    "Kommo JSON parse (apart",
    "us per contact",
    "targets: full re-plan of 1,000,000 people",
)

MANY_ACCOUNTS_LABELS = (
    "2 accounts x 20 contacts",
    "first sync:",
    "incremental, 2 edited:",
    "aggregate Kommo rate",
    "% of the pace",
    "per 1,000 requests",
    "longest 429 streak",
    "wall per account  00: ",
    "01: ",
    "wall of all",
)


def output_of(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_sync_speed_at_a_tiny_size_prints_every_figure_with_its_target() -> None:
    printed = output_of(
        "sync_speed.py",
        "--network",
        "fast",
        "--sizes",
        "30",
        "--changes",
        "1",
        "--baseline-max",
        "5",
    )
    missing = [label for label in SYNC_SPEED_LABELS if label not in printed]
    assert not missing, printed


def test_state_scale_at_a_tiny_size_prints_every_phase_and_the_parse_cost() -> None:
    printed = output_of("state_scale.py", "--contacts", "300")
    missing = [label for label in STATE_SCALE_LABELS if label not in printed]
    assert not missing, printed


def test_many_accounts_at_a_tiny_size_prints_both_phases_and_every_figure() -> None:
    printed = output_of(
        "many_accounts.py", "--accounts", "2", "--contacts", "20", "--changes", "2",
        "--network", "fast",
    )  # fmt: skip
    missing = [label for label in MANY_ACCOUNTS_LABELS if label not in printed]
    assert not missing, printed
