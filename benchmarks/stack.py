"""The three sandboxes the benchmark runs against, served from a child process in real time.

`Stack` holds the Kommo, Mailchimp and Klaviyo sandboxes on local ports with one `Network`
(network.py: answer delays and job durations), Kommo's 7 requests/s, Mailchimp's 10 connections
and Klaviyo's tiers, and stamps every answer with when its request came in and when it left.
`RemoteStack` serves a Stack from a child process (the vendors' CPU is not ours: in one process
their request handling would compete with the run for the GIL) and drives it over a pipe.
"""

from __future__ import annotations

import importlib
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from jobs import Job, jobs_of
from populate import Populated, populate

from kommo_sync.clock import Clock
from kommo_sync.sandbox.klaviyo import KlaviyoSandbox
from kommo_sync.sandbox.kommo import KommoSandbox
from kommo_sync.sandbox.mailchimp import MailchimpSandbox
from kommo_sync.sandbox.network import Network, network
from kommo_sync.sandbox.seed import SeedInfo, mutate_fraction, seed_account
from kommo_sync.sandbox.server import LoggedRequest, Request, Response, SandboxServer

KOMMO_TOKEN = "bench-kommo-token-0001"
MAILCHIMP_KEY = "sandbox-benchmark-key-us1"
KLAVIYO_KEY = "pk_bench_klaviyo_key_0001"
ENV = {
    "KOMMO_TOKEN": KOMMO_TOKEN,
    "MAILCHIMP_API_KEY": MAILCHIMP_KEY,
    "KLAVIYO_API_KEY": KLAVIYO_KEY,
}
KOMMO_LIMIT = 7
APIS = ("kommo", "mailchimp", "klaviyo")


@dataclass(frozen=True)
class Stamp:
    """One answered request: monotonic seconds when it came in and when its answer left."""

    start: float
    end: float
    request: LoggedRequest


class Stack:
    """The three sandboxes on local ports, in real time, under one network model."""

    def __init__(self, model: Network):
        clock = Clock()
        self.kommo = KommoSandbox(clock, token=KOMMO_TOKEN, rate_limit=KOMMO_LIMIT)
        self.mailchimp = MailchimpSandbox(clock, api_key=MAILCHIMP_KEY, max_connections=10)
        self.klaviyo = KlaviyoSandbox(clock, api_key=KLAVIYO_KEY)
        self.kommo.latency = model.kommo
        self.mailchimp.latency, self.mailchimp.timing = model.mailchimp, model.mailchimp_jobs
        self.klaviyo.latency, self.klaviyo.timing = model.klaviyo, model.klaviyo_jobs
        self.model = model
        self.apps = {"kommo": self.kommo, "mailchimp": self.mailchimp, "klaviyo": self.klaviyo}
        self.stamps: dict[str, list[Stamp]] = {name: [] for name in self.apps}
        for name, app in self.apps.items():
            app.dispatch = self._stamped(app.dispatch, self.stamps[name])  # type: ignore[method-assign,assignment]
        self.servers = {name: SandboxServer(app).start() for name, app in self.apps.items()}
        self.list_id = self.mailchimp.add_list("CRM contacts")
        self.klaviyo_list = self.klaviyo.add_list("CRM Leads")

    @staticmethod
    def _stamped(
        dispatch: Callable[[Request], Response], stamps: list[Stamp]
    ) -> Callable[[Request], Response]:
        """The app's dispatch, noting when each request came in and its answer left."""
        clock = Clock()

        def answer(request: Request) -> Response:
            start = clock.monotonic()
            response = dispatch(request)
            logged = LoggedRequest(
                request.method, request.path, request.query, response.status, {}, request.body
            )
            stamps.append(Stamp(start, clock.monotonic(), logged))
            return response

        return answer

    def url(self, name: str) -> str:
        return self.servers[name].url

    def marks(self) -> dict[str, int]:
        """Where each request log ends now; `since(marks)` returns what came after."""
        return {name: len(stamps) for name, stamps in self.stamps.items()}

    def since(self, marks: dict[str, int]) -> dict[str, list[Stamp]]:
        """Stamps after `marks`, bodies dropped (they stay here; jobs are read from them)."""
        return {
            name: [replace(s, request=replace(s.request, body=b"")) for s in stamps[marks[name] :]]
            for name, stamps in self.stamps.items()
        }

    def jobs(self, marks: dict[str, int]) -> list[Job]:
        """The vendor jobs the run submitted after `marks` (see jobs.py)."""
        return jobs_of(
            {name: stamps[marks[name] :] for name, stamps in self.stamps.items()}, self.model
        )

    def sizes(self) -> dict[str, int]:
        return {
            "contacts": len(self.kommo.contacts),
            "leads": len(self.kommo.leads),
            "companies": len(self.kommo.companies),
            "custom fields": len(self.kommo.custom_fields),
        }

    def close(self) -> None:
        for server in self.servers.values():
            server.stop()


class RemoteStack:
    """A `Stack` served from a child process, driven over a pipe: seeding, edits, stamps
    (without bodies) and the run's jobs come back as plain data."""

    def __init__(self, model_name: str):
        context = multiprocessing.get_context("fork")
        self.pipe, child = context.Pipe()
        self.process = context.Process(target=_serve_stack, args=(child, model_name), daemon=True)
        self.process.start()
        self.urls, self.list_id, self.klaviyo_list = self._call("where")

    def _call(self, command: str, *args: Any) -> Any:
        return call_child(self.pipe, command, *args)

    def url(self, name: str) -> str:
        return str(self.urls[name])

    def seed(self, contacts: int, seed: int) -> SeedInfo:
        info: SeedInfo = self._call("seed", contacts, seed)
        return info

    def populate(self, seed: int) -> Populated:
        """Fill the destinations with people already there (populate.py)."""
        populated: Populated = self._call("populate", seed)
        return populated

    def mutate(self, count: int, seed: int) -> list[int]:
        """Edit `count` contacts (name, phone, consent or a lead's stage)."""
        changed: list[int] = self._call("mutate", count, seed)
        return changed

    def sizes(self) -> dict[str, int]:
        sizes: dict[str, int] = self._call("sizes")
        return sizes

    def marks(self) -> dict[str, int]:
        marks: dict[str, int] = self._call("marks")
        return marks

    def since(self, marks: dict[str, int]) -> dict[str, list[Stamp]]:
        stamps: dict[str, list[Stamp]] = self._call("since", marks)
        return stamps

    def jobs(self, marks: dict[str, int]) -> list[Job]:
        jobs: list[Job] = self._call("jobs", marks)
        return jobs

    def close(self) -> None:
        self._call("close")
        self.process.join(timeout=10)


def _serve_stack(pipe: Any, model_name: str) -> None:
    """The child process: one Stack, answering RemoteStack's commands until `close`."""
    stack = Stack(network(model_name))
    commands: dict[str, Callable[..., Any]] = {
        "where": lambda: (
            {name: stack.url(name) for name in APIS},
            stack.list_id,
            stack.klaviyo_list,
        ),
        "seed": lambda contacts, seed: seed_account(stack.kommo, contacts, seed=seed),
        "populate": lambda seed: populate(stack, seed),
        "mutate": lambda count, seed: mutate_fraction(
            stack.kommo, count / max(1, len(stack.kommo.contacts)), seed
        ),
        "sizes": stack.sizes,
        "marks": stack.marks,
        "since": stack.since,
        "jobs": stack.jobs,
        "close": stack.close,
    }
    answer_commands(pipe, commands)


def call_child(pipe: Any, command: str, *args: Any) -> Any:
    """One command to a sandbox process over its pipe; its answer, or its failure raised."""
    pipe.send((command, args))
    ok, value = pipe.recv()
    if not ok:
        raise RuntimeError(f"sandbox process: {value}")
    return value


def answer_commands(pipe: Any, commands: dict[str, Callable[..., Any]]) -> None:
    """The sandbox process's side: run each command sent, send back its answer, until `close`."""
    while True:
        command, args = pipe.recv()
        try:
            pipe.send((True, commands[command](*args)))
        except Exception as exc:  # reported to the parent, which stops
            pipe.send((False, f"{command}: {exc!r}"))
        if command == "close":
            return


def klaviyo_destination_ready() -> bool:
    """Whether kommo_sync.destinations.klaviyo imports (a half-written one leaves it out)."""
    try:
        importlib.import_module("kommo_sync.destinations.klaviyo")
    except Exception as exc:  # a broken module must not stop the Mailchimp figures
        print(f"note: kommo_sync.destinations.klaviyo does not import ({exc!r}); Klaviyo left out")
        return False
    return True


def write_config(
    stack: RemoteStack, folder: Path, with_klaviyo: bool, kommo_rate: float | None = None
) -> Path:
    """A sync.yaml in `folder` aiming kommo-sync at the stack's sandboxes."""
    raw: dict[str, Any] = {
        "kommo": {
            "base_url": stack.url("kommo"),
            "token": "${KOMMO_TOKEN}",
            "consent_field": "Email consent",
            "lead_source_field": "Lead source",
        },
        "state": str(folder / "state.db"),
        "mailchimp": {
            "api_key": "${MAILCHIMP_API_KEY}",
            "base_url": stack.url("mailchimp") + "/3.0",
            "list_id": stack.list_id,
        },
    }
    if kommo_rate is not None:
        raw["kommo"]["requests_per_second"] = kommo_rate
    if with_klaviyo:
        raw["klaviyo"] = {
            "api_key": "${KLAVIYO_API_KEY}",
            "base_url": stack.url("klaviyo"),
            "list_id": stack.klaviyo_list,
        }
    path = folder / "sync.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path
