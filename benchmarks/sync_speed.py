"""Sync speed: kommo-sync against the three sandboxes in real time, next to a per-record baseline.

    .venv/bin/python benchmarks/sync_speed.py                    # the whole benchmark, realistic
    .venv/bin/python benchmarks/sync_speed.py --quick            # small sizes, a few minutes
    .venv/bin/python benchmarks/sync_speed.py --sizes 3000 --changes 1,10 --network slow

The sandboxes serve from a child process under a network model (kommo_sync/sandbox/network.py:
answer delays per endpoint, vendor job durations), with Kommo's 7 requests/s, Mailchimp's 10
connections and Klaviyo's tiers; the destinations already hold people (populate.py). The
per-record baseline runs first on sandboxes of its own (baseline.py); then, per size, a first
sync, and after the first sync of `--incremental-on` contacts an incremental run per change
count and a nothing-changed run. Each run prints every figure with the issue's targets beside
it; a side-by-side table with the baseline ends the output. README.md explains each figure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from baseline import MEASURED_CHANGES, Baseline, baseline  # noqa: E402 (after sys.path)
from report import print_comparison, print_run  # noqa: E402 (after sys.path)
from runs import ours  # noqa: E402 (after sys.path)
from stack import KOMMO_LIMIT  # noqa: E402 (after sys.path)

from kommo_sync.sandbox.network import NETWORKS  # noqa: E402 (after sys.path)

SIZES = "1000,3000,10000,30000,100000"
CHANGES = "1,10,100,1000"
QUICK = {"sizes": [1000, 3000], "changes": [1, 10, 100], "baseline_max": 150}


def counts(text: str) -> list[int]:
    return [int(part) for part in text.replace("_", "").split(",") if part]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--network", choices=list(NETWORKS), default="realistic")
    parser.add_argument("--sizes", type=counts, default=counts(SIZES), help="first-sync sizes")
    parser.add_argument("--changes", type=counts, default=counts(CHANGES), help="edits per run")
    parser.add_argument(
        "--incremental-on",
        type=int,
        help="size whose first sync the incremental runs follow "
        "(default: the largest size of at most 10,000, else the smallest)",
    )
    parser.add_argument(
        "--baseline-max", type=int, default=1000, help="largest baseline run (0: no baseline)"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a few minutes")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the generated account")
    parser.add_argument("--kommo-rate", type=float, help="kommo.requests_per_second to configure")
    args = parser.parse_args(argv)
    if args.quick:
        vars(args).update(QUICK)
    if args.incremental_on is None:
        small = [size for size in args.sizes if size <= 10_000]
        args.incremental_on = max(small) if small else min(args.sizes)
    return args


def run_baseline(args: argparse.Namespace) -> Baseline | None:
    """The per-record baseline up to `--baseline-max` contacts and 100 changes."""
    if args.baseline_max <= 0:
        return None
    contacts = min(args.baseline_max, max(args.sizes))
    changes = [c for c in args.changes if c <= min(MEASURED_CHANGES, contacts)]
    print(f"\nper-record baseline: {contacts:,} contacts, then {changes} changes ...", flush=True)
    result = baseline(args, contacts, changes)
    for figures in result.runs.values():
        print_run(figures, args.network, None)
    print(f"baseline outcomes: {dict(result.outcomes)}")
    return result


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(
        f"sync_speed: network {args.network}, first syncs {args.sizes}, incremental "
        f"{args.changes} after the {args.incremental_on:,} first sync; Kommo {KOMMO_LIMIT} "
        "req/s, Mailchimp 10 connections, Klaviyo tiers; real time",
        flush=True,
    )
    reference = run_baseline(args)
    runs = ours(args, lambda figures: print_run(figures, args.network, reference))
    if reference is not None:
        print_comparison(runs, reference)


if __name__ == "__main__":
    main()
