"""kommo-sync's measured runs: a first sync per size, then incremental runs and nothing changed.

Each size gets fresh sandboxes (a `RemoteStack` under the chosen network), a seeded Kommo
account, destinations that already hold people (populate.py) and a fresh state. The incremental
runs follow the first sync of one size (`--incremental-on`): before each, that many contacts
are edited; a nothing-changed run ends the series.
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from figures import ITEM_ROWS, Figures, kommo_endpoint, kommo_minimum, measured
from stack import ENV, RemoteStack, klaviyo_destination_ready, write_config

from kommo_sync.app import build_engine
from kommo_sync.clock import Clock
from kommo_sync.config import Config, load_config
from kommo_sync.destinations.base import event_sinks
from kommo_sync.results import RunOptions

Show = Callable[[Figures], None]


def run_sync(label: str, kind: str, size: int, config: Config, stack: RemoteStack) -> Figures:
    """One engine run against the stack, measured."""
    engine = build_engine(config, Clock())
    marks = stack.marks()
    with measured() as cost:
        result = engine.run(RunOptions())
    stamps = stack.since(marks)
    minimum = kommo_minimum(
        result.counts,
        Counter(map(kommo_endpoint, stamps["kommo"])),
        bool(event_sinks(engine.destinations)),
        stack.sizes()["custom fields"],
    )
    return Figures(
        label,
        kind,
        size,
        cost,
        config.kommo.requests_per_second,
        stamps,
        result.counts["people"],
        minimum,
        stack.jobs(marks),
        {key: result.counts[key] for key, _, _ in ITEM_ROWS.values()},
        Counter(result.counts),
    )


@contextmanager
def prepared(args: argparse.Namespace, contacts: int) -> Iterator[tuple[RemoteStack, Config]]:
    """Fresh sandboxes under the chosen network (a seeded account, destinations populated)
    and a config with a fresh state aimed at them."""
    stack = RemoteStack(args.network)
    try:
        print(f"\nseeding {contacts:,} contacts ...", flush=True)
        stack.seed(contacts, args.seed)
        sizes, populated = stack.sizes(), stack.populate(args.seed)
        print(
            f"  {sizes['contacts']:,} contacts, {sizes['leads']:,} leads, "
            f"{sizes['companies']:,} companies; the destinations already hold "
            f"{populated.members:,} people ({populated.known:,} of them in Kommo, "
            f"{populated.opted_out:,} opted out)",
            flush=True,
        )
        with tempfile.TemporaryDirectory(prefix="kommo-sync-bench-") as folder:
            path = write_config(stack, Path(folder), klaviyo_destination_ready(), args.kommo_rate)
            yield stack, load_config(path, ENV)
    finally:
        stack.close()


def ours(args: argparse.Namespace, show: Show) -> list[Figures]:
    """Every first sync, and the incremental series after the one of `args.incremental_on`."""
    runs: list[Figures] = []
    for size in args.sizes:
        with prepared(args, size) as (stack, config):
            first = run_sync(f"first sync, {size:,} contacts", "first", size, config, stack)
            show(first)
            runs.append(first)
            if size == args.incremental_on:
                runs += incremental_series(args, config, stack, show)
    return runs


def incremental_series(
    args: argparse.Namespace, config: Config, stack: RemoteStack, show: Show
) -> list[Figures]:
    runs = []
    for count in args.changes:
        changed = stack.mutate(count, args.seed + count)
        label = f"incremental, {len(changed):,} edited (of {args.incremental_on:,})"
        runs.append(run_sync(label, "incremental", len(changed), config, stack))
        show(runs[-1])
    runs.append(run_sync("nothing changed", "unchanged", 0, config, stack))
    show(runs[-1])
    return runs
