"""The HTTP base: pacing, retries honouring the server's wait, error kinds — in simulated time."""

import threading

import pytest

from kommo_sync.clock import FakeClock
from kommo_sync.errors import FatalError, OutcomeUnknown, RequestRefused, VendorDown
from kommo_sync.http import HttpClient, Streak, parse_retry_after
from kommo_sync.kommo import kommo_retry_after
from kommo_sync.pipeline import side_by_side
from kommo_sync.sandbox.server import App, Response, SandboxServer


class Scripted(App):
    """Answers each request with the next scripted response (then 200 {})."""

    def __init__(self, clock, script):
        super().__init__(clock)
        self.script = list(script)
        self.times = []
        self.route("GET", "/thing", self.answer)
        self.route("POST", "/thing", self.answer)

    def answer(self, request):
        self.times.append(self.clock.monotonic())
        return self.script.pop(0) if self.script else Response(200, {"ok": True})


@pytest.fixture
def clock():
    return FakeClock()


def serve(clock, script=()):
    app = Scripted(clock, script)
    return app, SandboxServer(app).start()


def client(server, clock, **kw):
    return HttpClient(
        base_url=server.url,
        vendor="Vendor",
        clock=clock,
        headers={"Authorization": "Bearer s3cr3t-token"},
        retry_after_from_body=kommo_retry_after,
        **kw,
    )


def test_pacing_spaces_requests_at_the_configured_rate(clock):
    app, server = serve(clock)
    with server:
        http = client(server, clock, rate_per_second=6.5)
        for _ in range(14):
            http.request("GET", "/thing")
    gaps = [b - a for a, b in zip(app.times, app.times[1:], strict=False)]
    assert min(gaps) >= 1 / 6.5 - 1e-9
    assert app.times[-1] - app.times[0] == pytest.approx(13 / 6.5)


def test_429_waits_for_retry_after_from_the_json_body(clock):
    too_many = Response(
        429,
        {"title": "Too Many Requests", "status": 429, "retry_after": 3},
        "application/problem+json",
    )
    app, server = serve(clock, [too_many])
    with server:
        assert client(server, clock).request("GET", "/thing").json() == {"ok": True}
    assert app.times[1] - app.times[0] == pytest.approx(3)


def test_retry_after_header_wins_and_accepts_http_dates(clock):
    app, server = serve(clock, [Response(503, {"title": "down"}, headers={"Retry-After": "7"})])
    with server:
        client(server, clock).request("GET", "/thing")
    assert app.times[1] - app.times[0] == pytest.approx(7)
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:10 GMT", FakeClock()) == pytest.approx(10)


def test_repeated_429s_stop_the_run_before_the_ip_gets_blocked(clock):
    script = [Response(429, {"retry_after": 1})] * 10
    app, server = serve(clock, script)
    with server, pytest.raises(FatalError, match="429 Too Many Requests 5 times"):
        client(server, clock, max_attempts=10, max_consecutive_429=5).request("GET", "/thing")
    assert len(app.times) == 5


def test_a_very_long_server_wait_stops_the_run_instead_of_sleeping_for_ages(clock):
    app, server = serve(clock, [Response(429, {"retry_after": 300})])
    with server, pytest.raises(FatalError, match="wait 300 s"):
        client(server, clock).request("GET", "/thing")


def test_5xx_is_retried_with_backoff_then_the_vendor_is_down(clock):
    app, server = serve(
        clock, [Response(500, {"title": "ErrInternalServer", "detail": "boom"})] * 3
    )
    with server, pytest.raises(VendorDown, match="HTTP 500"):
        client(server, clock, max_attempts=3).request("GET", "/thing")
    assert len(app.times) == 3
    assert app.times[2] - app.times[1] > app.times[1] - app.times[0]  # exponential


def test_401_is_fatal_with_a_hint_and_no_secret(clock):
    unauthorized = Response(
        401, {"title": "Unauthorized", "status": 401, "detail": "Invalid user name or password"}
    )
    app, server = serve(clock, [unauthorized])
    with server, pytest.raises(FatalError) as info:
        client(server, clock, auth_hint="renew the token").request("GET", "/thing")
    assert "HTTP 401" in str(info.value) and "renew the token" in str(info.value)
    assert "s3cr3t" not in str(info.value)
    assert len(app.times) == 1


def test_other_4xx_is_a_refusal_naming_no_record_with_the_vendor_reason_and_body(clock):
    body = {"title": "Invalid Resource", "detail": "Please provide a valid email address."}
    app, server = serve(clock, [Response(400, body)])
    with server, pytest.raises(RequestRefused) as info:
        client(server, clock).request("POST", "/thing", json={"x": 1})
    assert (info.value.reason, info.value.status, info.value.body) == (
        "Invalid Resource: Please provide a valid email address.",
        400,
        body,
    )
    assert info.value.permanent is False
    assert len(app.times) == 1


@pytest.mark.parametrize(
    "answer",
    [
        Response(502, {"detail": "bad gateway"}),
        Response(200, raw=b"<html>maintenance</html>", content_type="text/html"),
        Response(200, raw=b'{"id": 1, "na', content_type="application/json"),
    ],
)
def test_a_write_that_is_not_safe_to_repeat_is_never_resent_after_an_unknown_outcome(clock, answer):
    app, server = serve(clock, [answer, Response(200, {"id": 2})])
    with server, pytest.raises(OutcomeUnknown):
        client(server, clock).request("POST", "/thing", json={"note": 1}, repeatable=False)
    assert len(app.times) == 1


def test_a_429_is_retried_even_for_a_write_that_is_not_safe_to_repeat(clock):
    app, server = serve(clock, [Response(429, {"retry_after": 1})])
    with server:
        assert client(server, clock).request(
            "POST", "/thing", json={}, repeatable=False
        ).json() == {"ok": True}
    assert len(app.times) == 2


@pytest.mark.parametrize(
    "answer",
    [
        Response(200, raw=b"<html>oops</html>", content_type="text/html"),
        Response(200, raw=b'{"_embedded": {"x', content_type="application/json"),
        Response(204),
    ],
)
def test_an_unreadable_or_missing_body_is_retried_then_the_vendor_is_down(clock, answer):
    app, server = serve(clock, [answer] * 3)
    with server, pytest.raises(VendorDown):
        client(server, clock, max_attempts=3).get_json("/thing")
    assert len(app.times) == 3


def test_a_204_is_an_empty_answer_where_the_caller_allows_it(clock):
    app, server = serve(clock, [Response(204)])
    with server:
        assert client(server, clock).get_json("/thing", allow_empty=True) is None


def test_allowed_status_is_returned_not_raised(clock):
    app, server = serve(clock, [Response(404, {"title": "Resource Not Found"})])
    with server:
        assert client(server, clock).request("GET", "/thing", allow=(404,)).status_code == 404


def test_connection_errors_are_retried_then_the_vendor_is_down(clock):
    http = HttpClient(
        base_url="http://127.0.0.1:9", vendor="Nowhere", clock=clock, max_attempts=2, timeout=2
    )
    with pytest.raises(VendorDown, match="ConnectionError"):
        http.request("GET", "/x")
    assert len(clock.slept) >= 1


def test_the_429_streak_counts_every_answer_of_requests_sent_side_by_side(clock):
    """Workers share one client: every 429 any of them gets adds to one streak."""
    too_many = [Response(429, {"error": "slow down"}, {"Retry-After": "0"}) for _ in range(120)]
    app, server = serve(clock, too_many)
    with server:
        http = client(server, clock, max_connections=8, max_consecutive_429=10**6)

        def one() -> str:
            try:
                http.request("GET", "/thing")
            except VendorDown:
                return "down"
            return "ok"

        outcomes = side_by_side([one] * 24, limit=8)
    assert outcomes == ["down"] * 24  # 5 attempts each, every one a 429
    assert http.too_many.value == 120 == len(app.times)


def test_the_429_streak_is_changed_only_under_its_lock():
    """A worker adding to the streak waits while another holds the lock: the read-modify-write
    of one thread cannot interleave with another's (the race the lock closes)."""
    streak = Streak()
    with streak.lock:
        worker = threading.Thread(target=streak.add)
        worker.start()
        worker.join(timeout=0.2)
        assert worker.is_alive() and streak.value == 0
    worker.join(timeout=5)
    assert not worker.is_alive() and streak.value == 1
