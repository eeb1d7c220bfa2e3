"""A destination defined only here registers itself and syncs through the engine: its config
section is parsed by its own parser, its secret is masked, its pushes are recorded and planned
once; no core file knows it exists."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from kommo_sync.config_reader import Section
from kommo_sync.destinations import registry
from kommo_sync.destinations.base import Destination
from kommo_sync.destinations.registry import Vendor, Wiring
from kommo_sync.errors import ConfigError
from kommo_sync.model import Person
from kommo_sync.plan import STATUS, Change, Outcome, Plan, fingerprint
from tests.conftest import World

LEDGER_TOKEN = "ledger-secret-token-42"


@dataclass(frozen=True)
class LedgerConfig:
    token: str
    book: str

    def secrets(self) -> tuple[str, ...]:
        return (self.token,)


def parse_ledger(s: Section) -> LedgerConfig:
    s.only("token", "book")
    return LedgerConfig(token=s.text("token"), book=s.text("book"))


@dataclass
class Ledger(Destination):
    """Keeps one line per person: email and stage; a push that names the token is refused."""

    config: LedgerConfig
    lines: dict[int, dict[str, Any]] = field(default_factory=dict)
    name: str = "ledger"

    def target(self) -> str:
        return self.config.book

    def plan(
        self, people: list[Person], pushed: dict[int, dict[str, Any]], suppressed: set[str]
    ) -> Plan:
        plan = Plan()
        for person in people:
            line = {"email": person.email, "stage": person.stage.value, STATUS: "subscribed"}
            digest = fingerprint(line)
            if (pushed.get(person.contact_id) or {}).get("digest") != digest:
                record = {**line, "digest": digest}
                change = Change(self.name, person.contact_id, person.email, "write", digest, record)
                plan.changes.append(change)
        return plan

    def push(self, changes: list[Change]) -> list[Outcome]:
        for change in changes:
            self.lines[change.person_id] = change.record
        return [Outcome(change, True) for change in changes]


BOOKS: list[Ledger] = []


def build_ledger(config: LedgerConfig, wiring: Wiring) -> Ledger:
    ledger = Ledger(config)
    BOOKS.append(ledger)
    return ledger


@pytest.fixture
def ledger_world(world: World) -> Iterator[World]:
    BOOKS.clear()
    vendor = Vendor(name="ledger", parse=parse_ledger, build=build_ledger, secret_keys=("token",))
    with registry.registered(vendor):
        world.raw["ledger"] = {"token": LEDGER_TOKEN, "book": "main"}
        yield world


def test_a_destination_defined_in_tests_syncs_through_the_engine(ledger_world, sales):
    world = ledger_world
    ada = world.kommo.add_contact("Ada", email="ada@firm.io", consent=True)
    world.kommo.add_lead("Deal", 100, sales, world.status_id(sales, "Qualified"), [ada])
    world.kommo.add_contact("Bob", email="bob@firm.io", consent=True)

    first = world.run()
    assert first.counts["ledger.write"] == 2 and first.counts["ledger.done"] == 2
    assert {line["email"]: line["stage"] for line in BOOKS[-1].lines.values()} == {
        "ada@firm.io": "in_progress",
        "bob@firm.io": "new",
    }
    world.clock.advance(600)
    assert world.run().counts["ledger.write"] == 0  # what was pushed is remembered


def test_its_config_section_is_parsed_by_its_parser_and_its_secret_is_masked(ledger_world):
    world = ledger_world
    assert world.config().ledger == LedgerConfig(LEDGER_TOKEN, "main")
    assert LEDGER_TOKEN in world.config().secrets
    world.raw["ledger"]["pages"] = 3
    with pytest.raises(ConfigError) as error:
        world.config()
    assert error.value.key == "ledger.pages"


def test_its_literal_secret_is_warned_about_and_never_printed(ledger_world):
    world = ledger_world
    world.kommo.add_contact("Ada", email="ada@firm.io", consent=True)
    result = world.cli("run", "--json")
    assert result.exit_code == 0
    assert LEDGER_TOKEN not in result.output
    assert "ledger.token" in result.output  # the warning names the key, never the value
    assert json.loads(result.stdout)["destinations"]["ledger"]["status"] == "ok"


def test_unregistered_it_is_an_unknown_section(world):
    world.raw["ledger"] = {"token": LEDGER_TOKEN, "book": "main"}
    with pytest.raises(ConfigError) as error:
        world.config()
    assert error.value.key == "ledger"
