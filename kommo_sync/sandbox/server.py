"""The small HTTP framework every sandbox is built on.

A sandbox is an `App` (routes + in-memory vendor state) served by `SandboxServer` on a local
port in a background thread. Latency, rate windows and job progress read the injected Clock,
so tests run in simulated time and benchmarks in real time. Every App also carries a
`FaultSwitch` (faults.py) that dispatch consults before anything else, and a `Latency`
(network.py) that delays each answer once the handler has made it: none by default.
"""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import random
import re
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kommo_sync.clock import Clock
from kommo_sync.sandbox.faults import EARLY_KINDS, Fault, FaultSwitch
from kommo_sync.sandbox.network import Latency

# How _Handler puts a Response on the wire: whole, closed unanswered, or half the body then closed.
WHOLE, DROP, HALF_BODY = "whole", "drop", "half_body"
FAULT_PAGE = (
    b"<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>"
    b"<h1>Checking your browser before accessing the site.</h1></body></html>"
)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


@dataclass
class Response:
    status: int = 200
    body: Any = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    wire: str = WHOLE

    def encode(self) -> bytes:
        if self.raw is not None:
            return self.raw
        if self.body is None:
            return b""
        return json.dumps(self.body).encode("utf-8")


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def is_write(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE")

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None


Handler = Callable[[Request], Response]
# Not the vendor's data: a snapshot neither keeps nor restores these (latency and job timing are
# the network a test or benchmark chose, not the account's state).
NOT_DATA = frozenset({"routes", "log", "faults", "lock", "clock", "latency", "timing"})
_LOCK, _RLOCK = type(threading.Lock()), type(threading.RLock())


class _DataPickler(pickle.Pickler):
    """Pickles an App's data: locks and thread-locals come back new, clocks (rate windows hold
    one) come back as the restoring App's own clock."""

    def persistent_id(self, obj: Any) -> str | None:
        return "clock" if isinstance(obj, Clock) else None

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _LOCK):
            return threading.Lock, ()
        if isinstance(obj, _RLOCK):
            return threading.RLock, ()
        if isinstance(obj, threading.local):
            return threading.local, ()
        return NotImplemented


class _DataUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, clock: Clock):
        super().__init__(io.BytesIO(data))
        self.clock = clock

    def persistent_load(self, pid: Any) -> Any:
        if pid != "clock":
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        return self.clock


class App:
    """Routes plus a request log; subclasses hold a vendor's in-memory state."""

    def __init__(self, clock: Clock | None = None):
        self.clock = clock or Clock()
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.log: list[LoggedRequest] = []
        self.lock = threading.RLock()
        self.latency = Latency()
        self.faults = FaultSwitch()
        self._random = random.Random(7)

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Register `handler` for `method` and a path pattern with {name} placeholders."""
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "/?$"
        self.routes.append((method, re.compile(regex), handler))

    def before(self, request: Request) -> Response | None:
        """Auth, rate limits and the like; a Response here short-circuits the handler."""
        return None

    def failure_response(self, status: int, body: Any) -> Response:
        """An injected error (fail_next, status faults); sandboxes send their vendor's bodies."""
        if isinstance(body, str):
            return Response(status, content_type="text/html", raw=body.encode("utf-8"))
        return Response(status, body if body is not None else {"status": status})

    def dispatch(self, request: Request) -> Response:
        """Faults first, then `before` and the route, then latency; every request is logged."""
        fault = self.faults.pick(request)
        response = self._handle(request) if fault is None else self._faulted(fault, request)
        with self.lock:
            self.log.append(
                LoggedRequest(
                    request.method,
                    request.path,
                    request.query,
                    response.status,
                    request.headers,
                    request.body,
                )
            )
        return response

    def _handle(self, request: Request) -> Response:
        early = self.before(request)
        response = early if early is not None else self._route(request)
        self._simulate_latency(request, response)
        return response

    def _faulted(self, fault: Fault, request: Request) -> Response:
        """The response `fault` makes of `request`; DROP ones are logged with status 0."""
        if fault.kind in EARLY_KINDS:
            return self._early_fault(fault)
        if fault.kind == "delay":
            time.sleep(fault.delay)  # real seconds: the client's timeout is real too
        return self._late_fault(fault, self._handle(request))

    def _early_fault(self, fault: Fault) -> Response:
        if fault.kind == "status":
            response = self.failure_response(fault.status, fault.body)
            response.headers.update(fault.headers or {})
            return response
        if fault.kind == "kill_before":
            self.faults.kill_victim()
        return Response(0, wire=DROP)

    def _late_fault(self, fault: Fault, response: Response) -> Response:
        """The handler has run (the vendor acted); now spoil its answer."""
        if fault.kind in ("reset_after", "kill_after"):
            if fault.kind == "kill_after":
                self.faults.kill_victim()
            return Response(0, wire=DROP)
        if fault.kind == "truncate":
            return replace(response, wire=HALF_BODY)
        if fault.kind == "html":
            return Response(200, content_type="text/html", raw=FAULT_PAGE)
        if fault.kind == "cut_json":
            payload = response.encode()
            json_type = (
                response.content_type if "json" in response.content_type else "application/json"
            )
            return Response(
                response.status,
                content_type=json_type,
                headers=response.headers,
                raw=payload[: len(payload) // 2],
            )
        if fault.kind == "no_content":
            return Response(204)
        return response

    def _route(self, request: Request) -> Response:
        path_matched = False
        for method, regex, handler in self.routes:
            match = regex.match(request.path)
            if not match:
                continue
            path_matched = True
            if method == request.method:
                request.params = match.groupdict()
                return handler(request)
        return self.not_found(request, method_mismatch=path_matched)

    def not_found(self, request: Request, method_mismatch: bool = False) -> Response:
        return Response(
            404,
            {
                "title": "Not Found",
                "status": 404,
                "detail": f"Cannot {request.method} {request.path}",
            },
            "application/problem+json",
        )

    def _simulate_latency(self, request: Request, response: Response) -> None:
        """Wait as long as the latency model says this answer takes. A size-dependent delay
        encodes the body here, once: `raw` then carries it to the wire."""
        if self.latency.silent:
            return
        size = 0
        if self.latency.sized(request.method, request.path):
            response.raw = response.encode()
            size = len(response.raw)
        seconds = self.latency.seconds(
            request.method, request.path, request.body, size, self._random
        )
        if seconds > 0:
            self.clock.sleep(seconds)

    def requests(self, method: str | None = None, path_prefix: str = "") -> list[LoggedRequest]:
        """The logged requests, optionally by method and path prefix (for test assertions)."""
        with self.lock:
            return [
                r
                for r in self.log
                if (method is None or r.method == method) and r.path.startswith(path_prefix)
            ]

    def writes(self) -> list[LoggedRequest]:
        return [r for r in self.requests() if r.is_write]

    def snapshot(self) -> bytes:
        """The vendor's data (not its routes, log, faults, clock or locks), to `restore` into a
        fresh App of the same kind: a test prepares a world once and replays from there."""
        with self.lock:
            kept = {k: v for k, v in vars(self).items() if k not in NOT_DATA}
            buffer = io.BytesIO()
            _DataPickler(buffer).dump(kept)
            return buffer.getvalue()

    def restore(self, snapshot: bytes) -> None:
        with self.lock:
            vars(self).update(_DataUnpickler(snapshot, self.clock).load())


class SlidingWindow:
    """Counts events in the last `window` seconds of the injected clock (server rate limits)."""

    def __init__(self, clock: Clock, limit: int, window: float = 1.0):
        self.clock, self.limit, self.window = clock, limit, window
        self.stamps: deque[float] = deque()
        self.lock = threading.Lock()

    def admit(self) -> bool:
        """Record one request; False when it is over the limit (it is then not counted)."""
        with self.lock:
            now = self.clock.monotonic()
            while self.stamps and self.stamps[0] <= now - self.window:
                self.stamps.popleft()
            if len(self.stamps) >= self.limit:
                return False
            self.stamps.append(now)
            return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    app: App

    def _serve(self) -> None:
        response = self.app.dispatch(self._read_request())
        if response.wire == DROP:
            self._drop()
            return
        payload = response.encode()
        self.send_response(response.status)
        if payload or response.status != 204:
            self.send_header("Content-Type", response.content_type)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if response.wire == HALF_BODY:
            self.wfile.write(payload[: len(payload) // 2])
            self._drop()
        elif payload:
            self.wfile.write(payload)

    def _read_request(self) -> Request:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        return Request(
            self.command,
            url.path,
            parse_qs(url.query, keep_blank_values=True),
            {k.lower(): v for k, v in self.headers.items()},
            body,
        )

    def _drop(self) -> None:
        """Close the connection now, so the client sees it end without (the rest of) a response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timeout faults) is normal here; other errors still print."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class SandboxServer:
    """Serves an App on 127.0.0.1 in a daemon thread; use as a context manager."""

    def __init__(self, app: App, port: int = 0):
        handler = type("BoundHandler", (_Handler,), {"app": app})
        self.app = app
        self.httpd = _Server(("127.0.0.1", port), handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> SandboxServer:
        if not self.thread.is_alive():
            self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
