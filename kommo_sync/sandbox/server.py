"""The small HTTP framework every sandbox is built on.

A sandbox is an `App` (routes + in-memory vendor state) served by `SandboxServer` on a local
port in a background thread. Latency, rate windows and job progress read the injected Clock,
so tests run in simulated time and benchmarks in real time.
"""
from __future__ import annotations

import json
import random
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from kommo_sync.clock import Clock


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


class App:
    """Routes plus a request log; subclasses hold a vendor's in-memory state."""

    def __init__(self, clock: Clock | None = None):
        self.clock = clock or Clock()
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.log: list[LoggedRequest] = []
        self.lock = threading.RLock()
        self.latency: tuple[float, float] = (0.0, 0.0)
        self._random = random.Random(7)

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Register `handler` for `method` and a path pattern with {name} placeholders."""
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "/?$"
        self.routes.append((method, re.compile(regex), handler))

    def before(self, request: Request) -> Response | None:
        """Auth, rate limits and the like; a Response here short-circuits the handler."""
        return None

    def dispatch(self, request: Request) -> Response:
        self._simulate_latency()
        early = self.before(request)
        response = early if early is not None else self._route(request)
        with self.lock:
            self.log.append(LoggedRequest(request.method, request.path, request.query,
                                          response.status, request.headers, request.body))
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
        return Response(404, {"title": "Not Found", "status": 404,
                              "detail": f"Cannot {request.method} {request.path}"},
                        "application/problem+json")

    def _simulate_latency(self) -> None:
        low, high = self.latency
        if high > 0:
            self.clock.sleep(self._random.uniform(low, high))

    def requests(self, method: str | None = None, path_prefix: str = "") -> list[LoggedRequest]:
        """The logged requests, optionally by method and path prefix (for test assertions)."""
        with self.lock:
            return [r for r in self.log
                    if (method is None or r.method == method) and r.path.startswith(path_prefix)]

    def writes(self) -> list[LoggedRequest]:
        return [r for r in self.requests() if r.is_write]


class SlidingWindow:
    """Counts events in the last `window` seconds of the injected clock (server-side rate limits)."""

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
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(self.command, url.path, parse_qs(url.query, keep_blank_values=True),
                          {k.lower(): v for k, v in self.headers.items()}, body)
        response = self.app.dispatch(request)
        payload = response.encode()
        self.send_response(response.status)
        if payload or response.status != 204:
            self.send_header("Content-Type", response.content_type)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


class SandboxServer:
    """Serves an App on 127.0.0.1 in a daemon thread; use as a context manager."""

    def __init__(self, app: App, port: int = 0):
        handler = type("BoundHandler", (_Handler,), {"app": app})
        self.app = app
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "SandboxServer":
        if not self.thread.is_alive():
            self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "SandboxServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
