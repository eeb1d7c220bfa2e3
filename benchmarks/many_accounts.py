"""Many accounts from one host: `kommo-sync run` processes side by side sharing Kommo's pace.

    .venv/bin/python benchmarks/many_accounts.py                          # 16 x 3,000, realistic
    .venv/bin/python benchmarks/many_accounts.py --accounts 4 --contacts 500 --network fast

One child process serves an account's Kommo and Mailchimp sandboxes per account, every Kommo
account behind one IP's limit (7 requests/s counted together, as Kommo counts a host); each
account is seeded (seed_account) and gets its own folder, config and state. All accounts' runs
start at once as separate processes sharing the pacing file (the default `pacing_key: host`):
a first sync, then, after `--changes` contacts per account are edited, an incremental run.
Per phase it prints the aggregate Kommo request rate against the pace, 429s per 1,000 Kommo
requests, the longest 429 streak across accounts, and each account's wall and exit code.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

import yaml  # noqa: E402 (after sys.path)
from stack import (  # noqa: E402  # noqa: E402
    ENV,
    KOMMO_LIMIT,
    KOMMO_TOKEN,
    MAILCHIMP_KEY,
    Stack,
    Stamp,
    answer_commands,
    call_child,
)

from kommo_sync.clock import Clock  # noqa: E402
from kommo_sync.sandbox.kommo import KommoSandbox, OneIp, longest_429_streak  # noqa: E402
from kommo_sync.sandbox.mailchimp import MailchimpSandbox  # noqa: E402
from kommo_sync.sandbox.network import NETWORKS, network  # noqa: E402
from kommo_sync.sandbox.seed import mutate_fraction, seed_account  # noqa: E402
from kommo_sync.sandbox.server import SandboxServer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PACE = 6.3  # kommo.requests_per_second, the default


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=16)
    parser.add_argument("--contacts", type=int, default=3000, help="per account")
    parser.add_argument("--changes", type=int, default=30, help="contacts edited per account")
    parser.add_argument("--network", choices=sorted(NETWORKS), default="realistic")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--pacing-key", default="host", help="kommo.pacing_key; `account`: each paces alone"
    )
    return parser.parse_args(argv)


class Host:
    """The accounts' sandboxes (in this process: the child's side), Kommo behind one IP."""

    def __init__(self, accounts: int, model_name: str):
        clock, model = Clock(), network(model_name)
        self.ip = OneIp(clock, KOMMO_LIMIT)
        self.kommo = [KommoSandbox(clock, token=KOMMO_TOKEN) for _ in range(accounts)]
        self.mailchimp = [MailchimpSandbox(clock, api_key=MAILCHIMP_KEY) for _ in range(accounts)]
        self.stamps: list[list[Stamp]] = [[] for _ in range(accounts)]
        for kommo, mailchimp, stamps in zip(self.kommo, self.mailchimp, self.stamps, strict=True):
            kommo.behind(self.ip)
            kommo.latency = model.kommo
            mailchimp.latency, mailchimp.timing = model.mailchimp, model.mailchimp_jobs
            kommo.dispatch = Stack._stamped(kommo.dispatch, stamps)  # type: ignore[method-assign]
        self.lists = [mailchimp.add_list("CRM contacts") for mailchimp in self.mailchimp]
        self.servers = [SandboxServer(app).start() for app in (*self.kommo, *self.mailchimp)]

    def where(self) -> list[tuple[str, str, str]]:
        """Per account: Kommo's URL, Mailchimp's URL and its list."""
        n = len(self.kommo)
        return [(self.servers[i].url, self.servers[n + i].url, self.lists[i]) for i in range(n)]

    def seed(self, contacts: int, seed: int) -> None:
        for i, kommo in enumerate(self.kommo):
            seed_account(kommo, contacts, seed=seed + i)

    def mutate(self, count: int, seed: int) -> None:
        for i, kommo in enumerate(self.kommo):
            mutate_fraction(kommo, count / max(1, len(kommo.contacts)), seed + i)

    def marks(self) -> list[int]:
        return [len(stamps) for stamps in self.stamps]

    def since(self, marks: list[int]) -> list[tuple[float, int]]:
        """(arrival, status) of every Kommo request after `marks`, all accounts, in order."""
        arrived = [
            (s.start, s.request.status) for i, st in enumerate(self.stamps) for s in st[marks[i] :]
        ]
        return sorted(arrived)

    def close(self) -> None:
        for server in self.servers:
            server.stop()


def _serve(pipe: Any, accounts: int, model_name: str) -> None:
    """The child process: one Host, answering the parent's calls until `close`."""
    host = Host(accounts, model_name)
    names = ("where", "seed", "mutate", "marks", "since", "close")
    answer_commands(pipe, {name: getattr(host, name) for name in names})


def remote_host(accounts: int, model_name: str) -> Callable[..., Any]:
    """A Host in a child process (the vendors' CPU is not the runs'); returns its caller."""
    context = multiprocessing.get_context("fork")
    pipe, child = context.Pipe()
    context.Process(target=_serve, args=(child, accounts, model_name), daemon=True).start()
    return partial(call_child, pipe)


def write_configs(folder: Path, where: list[tuple[str, str, str]], pacing_key: str) -> list[Path]:
    """One folder per account (`client-NN`), its config, its state; one pacing file for all."""
    paths = []
    for n, (kommo_url, mailchimp_url, list_id) in enumerate(where):
        account = folder / f"client-{n:02d}"
        account.mkdir()
        raw = {
            "kommo": {
                "base_url": kommo_url,
                "token": "${KOMMO_TOKEN}",
                "consent_field": "Email consent",
                "lead_source_field": "Lead source",
                "requests_per_second": PACE,
                "pacing_file": str(folder / "pacing.db"),
                "pacing_key": pacing_key,
            },
            "state": str(account / "state.db"),
            "mailchimp": {
                "api_key": "${MAILCHIMP_API_KEY}",
                "base_url": mailchimp_url + "/3.0",
                "list_id": list_id,
            },
        }
        (account / "sync.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
        paths.append(account / "sync.yaml")
    return paths


def run_all(configs: list[Path]) -> list[tuple[float, str]]:
    """Every account's `kommo-sync run` at once; each one's wall seconds and how it ended."""
    results: list[tuple[float, str]] = [(0.0, "")] * len(configs)

    def one(n: int, config: Path) -> None:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "kommo_sync.cli", "--config", str(config), "run", "--quiet"],
            env={**os.environ, **ENV},
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
        crashed = b"Traceback" in done.stderr
        ended = f"exit {done.returncode}" + (", crashed" if crashed else "")
        results[n] = (time.monotonic() - started, ended)

    threads = [threading.Thread(target=one, args=(n, c)) for n, c in enumerate(configs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def report(phase: str, arrived: list[tuple[float, int]], runs: list[tuple[float, str]]) -> None:
    statuses = [status for _, status in arrived]
    span = arrived[-1][0] - arrived[0][0] if len(arrived) > 1 else 0.0
    rate = (len(arrived) - 1) / span if span else 0.0
    too_many = statuses.count(429)
    print(f"{phase}:")
    print(f"  Kommo requests {len(arrived)} over {span:.1f} s, all accounts")
    print(f"  aggregate Kommo rate {rate:.2f}/s = {100 * rate / PACE:.0f} % of the pace {PACE}/s")
    print(f"  429s {too_many} = {1000 * too_many / max(1, len(arrived)):.1f} per 1,000 requests")
    print(f"  longest 429 streak {longest_429_streak(statuses)}")
    walls = "  ".join(f"{n:02d}: {wall:.1f} s ({end})" for n, (wall, end) in enumerate(runs))
    print(f"  wall per account  {walls}")
    print(f"  wall of all {max(wall for wall, _ in runs):.1f} s (exit 1: some records rejected)")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    host = remote_host(args.accounts, args.network)
    try:
        started = time.monotonic()
        host("seed", args.contacts, args.seed)
        seeded = time.monotonic() - started
        print(f"{args.accounts} accounts x {args.contacts} contacts, network {args.network}, "
              f"pacing_key {args.pacing_key}, seeded in {seeded:.0f} s")  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="kommo-sync-many-") as folder:
            configs = write_configs(Path(folder), host("where"), args.pacing_key)
            for phase, edit in (("first sync", 0), (f"incremental, {args.changes} edited", 1)):
                if edit:
                    host("mutate", args.changes, args.seed)
                marks = host("marks")
                runs = run_all(configs)
                report(phase, host("since", marks), runs)
    finally:
        host("close")


if __name__ == "__main__":
    main()
