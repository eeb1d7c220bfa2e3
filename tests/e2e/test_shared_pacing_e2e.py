"""Issue 16, Kommo's pace shared across processes: several `kommo-sync run` processes (one per
account, as cron or systemd start them) against Kommo sandboxes counted per IP, as Kommo counts
one host's requests. Sharing the pacing file (the default, keyed by host) they draw no 429
streak; each pacing alone (`pacing_key: account`) they overrun the IP's 7 a second. Real time:
about 30 paced requests, 5 seconds a test."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kommo_sync.clock import Clock
from kommo_sync.sandbox.kommo import KommoSandbox, OneIp
from kommo_sync.sandbox.mailchimp import MailchimpSandbox
from kommo_sync.sandbox.server import SandboxServer
from tests.conftest import ENV, KOMMO_TOKEN, MAILCHIMP_KEY

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS = 4
CONTACTS = 40  # a page: a run is 7 Kommo requests


class Host:
    """`ACCOUNTS` Kommo accounts behind one IP's limit, one Mailchimp with a list for each."""

    def __init__(self, tmp: Path):
        clock = Clock()
        self.ip = OneIp(clock, rate_limit=7)
        self.accounts = [KommoSandbox(clock, token=KOMMO_TOKEN) for _ in range(ACCOUNTS)]
        for account in self.accounts:
            account.behind(self.ip)
            account.add_pipeline("Leads", ["Contact made"], is_main=True)
            for i in range(CONTACTS):
                account.add_contact(f"P{i}", "New", email=f"p{i}@firm.io", consent=True)
        self.mailchimp = MailchimpSandbox(clock, api_key=MAILCHIMP_KEY)
        self.servers = [SandboxServer(app).start() for app in (*self.accounts, self.mailchimp)]
        self.configs = [self._config(tmp, n) for n in range(ACCOUNTS)]

    def _config(self, tmp: Path, n: int) -> Path:
        folder = tmp / f"client-{n}"
        folder.mkdir()
        raw: dict[str, Any] = {
            "kommo": {
                "base_url": self.servers[n].url,
                "token": "${KOMMO_TOKEN}",
                "consent_field": "Email consent",
            },
            "state": str(folder / "state.db"),
            "mailchimp": {
                "api_key": "${MAILCHIMP_API_KEY}",
                "base_url": self.servers[-1].url + "/3.0",
                "list_id": self.mailchimp.add_list(f"Client {n}"),
            },
        }
        path = folder / "sync.yaml"
        path.write_text(yaml.safe_dump(raw), encoding="utf-8")
        return path

    def pace_each_alone(self) -> None:
        for path in self.configs:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            raw["kommo"]["pacing_key"] = "account"
            path.write_text(yaml.safe_dump(raw), encoding="utf-8")

    def run_all(self) -> list[subprocess.CompletedProcess[str]]:
        """Every account's run at once, as separate processes; their results."""
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "kommo_sync.cli", "--config", str(path), "run"],
                env={**os.environ, **ENV},
                cwd=ROOT,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for path in self.configs
        ]
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
        return results

    def count_429(self) -> int:
        return self.ip.statuses.count(429)

    def close(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    h = Host(tmp_path)
    yield h
    h.close()


def test_runs_of_several_accounts_on_one_host_share_the_pace_and_draw_no_429_streak(host):
    results = host.run_all()
    assert [r.returncode for r in results] == [0] * ACCOUNTS, [
        (r.stdout, r.stderr) for r in results
    ]
    for account in host.accounts:
        assert account.requests("GET", "/api/v4/contacts"), "every account was read"
    assert len(host.ip.statuses) >= 6 * ACCOUNTS
    assert host.count_429() <= 2
    assert host.ip.longest_429_streak() <= 1
    assert not [r.stderr for r in results if "pacing" in r.stderr], "all paced in the file"


def test_each_pacing_alone_they_overrun_the_hosts_limit(host):
    host.pace_each_alone()
    host.run_all()
    assert host.count_429() >= 5  # 12 where measured, against at most 2 sharing
