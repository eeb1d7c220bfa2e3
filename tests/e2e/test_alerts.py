"""Issue 16, alerts and health pings: a local webhook receiver records what a run tells it —
a failure and a recovery once per transition, new rejections once per run, nothing on a held
lock, start/success/fail pings — and a receiver that hangs or fails never changes the run."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kommo_sync.report import iso
from kommo_sync.sandbox.faults import Fault
from kommo_sync.sandbox.mailchimp.rules import subscriber_hash
from kommo_sync.state import FileLock, open_state
from tests.conftest import BOTH_BACKENDS, assert_no_secret

REVOKED = {"KOMMO_TOKEN": "revoked-token-9999"}
PING = "/ping/5f3c9a1e-0000-4bbb-8ccc-123456789abc"


@dataclass
class Receiver:
    """A tiny HTTP server in a thread: records each request; answers `status`, or waits until
    released when `hang` is set."""

    status: int = 200
    hang: bool = False
    requests: list[tuple[str, Any]] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(size).decode()
                receiver.requests.append((self.path, json.loads(raw) if raw else None))
                if receiver.hang:
                    receiver.released.wait(10)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def alerts(self) -> list[Any]:
        return [payload for path, payload in self.requests if path == "/hook/secret-path"]

    def pings(self) -> list[str]:
        return [
            path.removeprefix(PING) or "/" for path, _ in self.requests if path.startswith(PING)
        ]

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def alerting(world, receiver, **alerts):
    world.raw["alerts"] = {"webhook": receiver.url + "/hook/secret-path", **alerts}
    return world


@BOTH_BACKENDS
def test_a_failure_is_told_once_and_the_recovery_once(world, sales, receiver):
    alerting(world, receiver)
    assert world.cli("run").exit_code == 0
    assert receiver.alerts() == []
    failed = world.cli("run", env=REVOKED)
    assert failed.exit_code == 4
    [alert] = receiver.alerts()
    assert alert["event"] == "failure" and alert["exit_code"] == 4
    assert "expired or was revoked" in alert["error"] and alert["account"]
    with open_state(world.config(), dry_run=True) as state:
        [newest] = state.last_runs(1)
    run_id, started = newest["id"], newest["started_at"]
    assert alert["run_id"] == run_id == 2 and alert["started_at"] == iso(started)
    assert world.cli("run", env=REVOKED).exit_code == 4  # repeated: no second alert
    assert len(receiver.alerts()) == 1
    world.kommo.add_contact("Ada", email="ada@analytical.io")
    assert world.cli("run").exit_code == 0
    assert [a["event"] for a in receiver.alerts()] == ["failure", "recovery"]
    assert receiver.alerts()[1]["counts"]["pulled_contacts"] == 1
    assert_no_secret(json.dumps(receiver.requests), failed.output)
    assert "revoked-token-9999" not in json.dumps(receiver.requests)


def test_a_first_run_that_fails_alerts_in_slack_format(world, sales, receiver):
    alerting(world, receiver, format="slack")
    assert world.cli("run", env=REVOKED).exit_code == 4
    [alert] = receiver.alerts()
    assert list(alert) == ["text"]
    assert alert["text"].startswith("kommo-sync ") and "the run failed, exit 4" in alert["text"]


@BOTH_BACKENDS
def test_new_rejections_are_told_once_per_run_and_not_again_when_they_repeat(
    world, sales, receiver
):
    alerting(world.with_mailchimp(), receiver, on=["rejections"])
    world.kommo.add_contact("Fake", email="test@example.com", consent=True)
    world.kommo.add_contact("Fake2", email="other@example.com", consent=True)
    for email in ("ada@analytical.io",):
        world.kommo.add_contact("Ada", email=email, consent=True)
        path = rf"^/3\.0/lists/[^/]+/members/{subscriber_hash(email)}$"
        world.mailchimp.faults.add(
            Fault(method="PUT", path=path, status=400, times=0, body=throttle(email))
        )
    assert world.cli("run").exit_code == 1
    [alert] = receiver.alerts()
    assert alert["event"] == "rejections" and alert["new_rejections"] == 3
    world.clock.advance(3600)
    assert world.cli("run").exit_code == 1  # Ada's throttle is retried and refused again
    assert len(receiver.alerts()) == 1


def throttle(email):
    return {
        "status": 400,
        "title": "Member In Compliance State",
        "detail": f"{email} has signed up to a lot of lists very recently",
    }


def test_a_held_lock_alerts_and_pings_nothing(world, sales, receiver):
    alerting(world, receiver, ping_url=receiver.url + PING)
    lock = FileLock(world.tmp / "state.db.lock")
    lock.acquire()
    try:
        assert world.cli("run").exit_code == 3
    finally:
        lock.release()
    assert receiver.alerts() == [] and receiver.pings() == ["/start"]


def test_pings_start_then_success_or_fail(world, sales, receiver):
    world.raw["alerts"] = {"ping_url": receiver.url + PING}
    assert world.cli("run").exit_code == 0
    assert receiver.pings() == ["/start", "/"]
    assert world.cli("run", env=REVOKED).exit_code == 4
    assert receiver.pings() == ["/start", "/", "/start", "/fail"]
    result = world.cli("run", "-v")
    assert PING not in result.output  # the ping URL's path is a secret, even in request logs


def test_a_webhook_that_hangs_is_given_up_within_the_timeout_and_the_run_ends(
    world, sales, receiver
):
    receiver.hang = True
    alerting(world, receiver, timeout="0.2s")
    result = world.cli("run", env=REVOKED)
    assert result.exit_code == 4
    assert len(receiver.alerts()) == 1  # one attempt: a timeout is not retried
    assert "alert to 127.0.0.1 not delivered: no answer within 0.2 s" in result.output


def test_a_webhook_answering_500_is_retried_once_then_a_warning_and_the_exit_code_stays(
    world, sales, receiver
):
    receiver.status = 500
    alerting(world, receiver)
    result = world.cli("run", env=REVOKED)
    assert result.exit_code == 4
    assert len(receiver.alerts()) == 2
    assert "alert to 127.0.0.1 not delivered: HTTP 500 (the run goes on)" in result.output
    assert "secret-path" not in result.output


def test_a_config_that_does_not_load_still_alerts_when_its_alerts_section_parses(
    world, sales, receiver
):
    alerting(world, receiver, ping_url=receiver.url + PING)
    world.raw["kommo"]["requests_per_second"] = "fast"
    result = world.cli("run")
    assert result.exit_code == 2 and "kommo.requests_per_second" in result.output
    [alert] = receiver.alerts()
    assert alert["event"] == "failure" and alert["exit_code"] == 2
    assert "kommo.requests_per_second: must be a number" in alert["error"]
    assert receiver.pings() == ["/fail"]


def test_a_dry_run_alerts_and_pings_nobody(world, sales, receiver):
    alerting(world, receiver, ping_url=receiver.url + PING)
    assert world.cli("run", "--dry-run", env=REVOKED).exit_code == 4
    assert receiver.requests == []
