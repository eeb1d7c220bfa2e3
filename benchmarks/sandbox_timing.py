"""Sandbox timings: how fast the local vendor servers do what the tests ask of them.

    .venv/bin/python benchmarks/sandbox_timing.py
    .venv/bin/python benchmarks/sandbox_timing.py --contacts 100000 --repeat 5

Three figures, each the median (and the slowest) of `--repeat` tries, in real seconds:
1. seed: `seed_account` filling a fresh Kommo sandbox (simulated clock) with `--contacts`
   contacts, their leads and companies (the tests seed 20,000; they used to require < 3 s);
2. delay fault: a client with a 0.1 s timeout against a request the Kommo sandbox delays by
   0.4 s, from the call to its `requests.Timeout` (the test used to require < 0.3 s), and from
   the call to the delayed request showing in the sandbox's log;
3. sandbox stop: `kommo-sync sandbox --contacts 40` started as a real process, from SIGTERM to
   its exit (the test used to require < 5 s); the start, up to its config being written, is
   shown beside it.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from kommo_sync.clock import FakeClock  # noqa: E402  (after sys.path)
from kommo_sync.sandbox.faults import Fault  # noqa: E402  (after sys.path)
from kommo_sync.sandbox.kommo import KommoSandbox  # noqa: E402  (after sys.path)
from kommo_sync.sandbox.seed import seed_account  # noqa: E402  (after sys.path)
from kommo_sync.sandbox.server import SandboxServer  # noqa: E402  (after sys.path)

ROOT = Path(__file__).resolve().parents[1]
NOTES = "/api/v4/contacts/notes"
SECRETS = ("KOMMO_TOKEN", "MAILCHIMP_API_KEY", "KLAVIYO_API_KEY")


def timed(action: Callable[[], object]) -> float:
    """Real seconds `action` takes."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def seed_seconds(contacts: int) -> float:
    return timed(lambda: seed_account(KommoSandbox(FakeClock()), contacts))


def delay_fault_seconds() -> tuple[float, float]:
    """(seconds to the client's Timeout, seconds to the delayed request in the sandbox's log)."""
    kommo = KommoSandbox(FakeClock())
    contact = kommo.add_contact("Ada", "Lovelace", email="ada@example.org")
    kommo.faults.add(Fault(method="POST", path=NOTES, kind="delay", delay=0.4))
    server = SandboxServer(kommo).start()
    try:
        started = time.perf_counter()
        try:
            requests.post(
                server.url + NOTES,
                json=[{"entity_id": contact, "note_type": "common", "params": {"text": "Hi"}}],
                headers={"Authorization": "Bearer sandbox-kommo-token"},
                timeout=0.1,
            )
        except requests.Timeout:
            timed_out = time.perf_counter() - started
        else:
            raise SystemExit("the delayed request answered before the client's timeout")
        while not kommo.log and time.perf_counter() - started < 10:
            time.sleep(0.005)
        return timed_out, time.perf_counter() - started
    finally:
        server.stop()


def sandbox_stop_seconds() -> tuple[float, float]:
    """(seconds until `kommo-sync sandbox` wrote its config, seconds from SIGTERM to its exit)."""
    env = {name: value for name, value in os.environ.items() if name not in SECRETS}
    with tempfile.TemporaryDirectory(prefix="sandbox-timing-") as parent:
        folder = Path(parent) / "try"
        command = [sys.executable, "-m", "kommo_sync.cli", "sandbox", "--dir", str(folder)]
        started = time.perf_counter()
        process = subprocess.Popen(
            [*command, "--contacts", "40"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while not (folder / "sync.yaml").exists():
                if process.poll() is not None or time.perf_counter() - started > 120:
                    raise SystemExit("kommo-sync sandbox wrote no config")
                time.sleep(0.01)
            ready = time.perf_counter() - started
            stopping = time.perf_counter()
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
            return ready, time.perf_counter() - stopping
        finally:
            if process.poll() is None:
                process.kill()


def show(name: str, samples: list[float]) -> None:
    median, worst = statistics.median(samples), max(samples)
    print(f"  {name:<58}{median:>8.3f} s  (slowest {worst:.3f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=20_000, help="contacts to seed")
    parser.add_argument("--repeat", type=int, default=3, help="tries of each figure")
    args = parser.parse_args()
    print(f"sandbox_timing: {args.repeat} tries each, real seconds")
    show(
        f"seed {args.contacts:,} contacts",
        [seed_seconds(args.contacts) for _ in range(args.repeat)],
    )
    delays = [delay_fault_seconds() for _ in range(args.repeat)]
    show("delay fault 0.4 s, client timeout 0.1 s: to the Timeout", [d[0] for d in delays])
    show("delay fault 0.4 s: to the request in the sandbox's log", [d[1] for d in delays])
    stops = [sandbox_stop_seconds() for _ in range(args.repeat)]
    show("kommo-sync sandbox --contacts 40: to its config", [s[0] for s in stops])
    show("kommo-sync sandbox: SIGTERM to exit", [s[1] for s in stops])


if __name__ == "__main__":
    main()
