"""Reports: progress lines for cron, secrets scrubbed; every command has help and is documented."""

import logging
from collections import Counter
from pathlib import Path

from rich.console import Console

from kommo_sync.cli import cli
from kommo_sync.clock import FakeClock
from kommo_sync.masking import scrub
from kommo_sync.report import ProgressReporter


def test_progress_logs_a_plain_line_at_most_every_interval_when_not_a_tty(caplog):
    clock = FakeClock()
    counts = Counter(pulled_contacts=500, pulled_leads=250, pushed=400, rejected=2)
    with (
        open("/dev/null", "w") as devnull,
        caplog.at_level(logging.INFO, logger="kommo_sync.progress"),
    ):
        reporter = ProgressReporter(Console(file=devnull, force_terminal=False), clock, every=30)
        reporter("pull", counts)  # t = 0: too early
        clock.advance(31)
        reporter("push", counts)
        clock.advance(5)
        reporter("push", counts)  # 5 s later: too soon again
    assert [r.getMessage() for r in caplog.records] == [
        "push: pulled 500 contacts, 250 leads (24/s); pushed 400; rejected 2"
    ]


def test_scrub_masks_every_secret():
    assert scrub("key=abc123-us6 token tok-999", ["abc123-us6", "tok-999"]) == "key=*** token ***"


def test_every_command_has_help_and_is_in_the_readme():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name, command in cli.commands.items():
        assert command.help, name
        assert f"kommo-sync {name}" in readme, name
