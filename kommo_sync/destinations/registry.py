"""The one list of vendors: each destination's config section name, its parser, its factory
and its remote checks. config.py parses the registered sections, app.py builds destinations
from them and `check` runs their checks; no core file names a vendor.

A destination outside this package (a plugin, or one defined in tests) calls `register`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import import_module
from typing import Any, Protocol

from kommo_sync.batching import JobTimer
from kommo_sync.checklist import Check, Named
from kommo_sync.clock import Clock
from kommo_sync.config_reader import Section
from kommo_sync.destinations.base import Destination
from kommo_sync.model import Stage

BUILT_IN = ("kommo_sync.destinations.mailchimp", "kommo_sync.destinations.klaviyo")
"""Modules with a `VENDOR`, in the order their destinations are built and reported."""


class SectionConfig(Protocol):
    """A destination's parsed config section."""

    def secrets(self) -> tuple[str, ...]:
        """Every secret value of the section in every form it travels in (masked in output)."""
        ...


@dataclass(frozen=True)
class Wiring:
    """What every destination factory is given besides its own section."""

    tags: Mapping[Stage, str]
    clock: Clock
    timeout: float
    first_poll: float = JobTimer.FIRST
    job_limit: float = JobTimer.LIMIT

    def job_timer(self) -> JobTimer:
        """A destination's own timer: each vendor's jobs take their own time."""
        return JobTimer(self.first_poll, self.job_limit)


@dataclass(frozen=True)
class InitStep:
    """How `kommo-sync init` connects the destination: it asks for the key (flag
    `--<name>-key`, or the `key_env` variable) and the API address (`--<name>-url`), lists the
    account's `pick`s (`--<name>-<pick>`) with `listing`, and writes the section with `yaml`
    (the section's values, the item picked, and everything listed, for the comments)."""

    title: str
    key_prompt: str
    key_env: str
    key_help: str
    url_help: str
    pick: str
    pick_help: str
    question: str
    listing: Callable[[Any, Clock, float], list[Named]]
    yaml: Callable[[dict[str, Any], Named, list[Named]], list[str]]
    secret_forms: Callable[[str], tuple[str, ...]] = lambda key: (key,)
    pick_key: str = "list_id"


@dataclass(frozen=True)
class Vendor:
    """One destination kind. `secret_keys` name the section's keys that hold secrets (a literal
    value there is warned about); `checks` are `kommo-sync check`'s remote checks; `init` is how
    `kommo-sync init` connects it (without one, its section is written by hand)."""

    name: str
    parse: Callable[[Section], Any]
    build: Callable[[Any, Wiring], Destination]
    secret_keys: tuple[str, ...] = ("api_key",)
    checks: Callable[[Any, Clock, float], list[Check]] | None = None
    init: InitStep | None = None


_added: dict[str, Vendor] = {}


def vendors() -> list[Vendor]:
    """The built-in vendors, then the registered ones, by name at most once."""
    found = {v.name: v for v in (import_module(m).VENDOR for m in BUILT_IN)}
    return list({**found, **_added}.values())


def vendors_by_name() -> dict[str, Vendor]:
    return {vendor.name: vendor for vendor in vendors()}


def names() -> list[str]:
    return [vendor.name for vendor in vendors()]


def register(vendor: Vendor) -> None:
    _added[vendor.name] = vendor


def unregister(name: str) -> None:
    _added.pop(name, None)


@contextmanager
def registered(vendor: Vendor) -> Iterator[Vendor]:
    """A vendor registered for the length of a block (tests, plugins tried once)."""
    register(vendor)
    try:
        yield vendor
    finally:
        unregister(vendor.name)
