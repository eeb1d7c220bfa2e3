"""Every request body kommo-sync sends to Klaviyo validates against Klaviyo's own OpenAPI schemas.

The schemas are copied from the spec (revision 2026-07-15) into tests/specs/klaviyo_schemas.json.
Validation is made stricter than the spec in one way: an object that lists its properties takes
no others, as Klaviyo answers "'x' is not a valid field for the resource" to unknown fields.
Bodies are captured from the sandbox's request log after real runs over both the single and the
bulk paths, so nothing we send escapes the check.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, FormatChecker

from tests.conftest import KLAVIYO_KEY, World

SPEC = json.loads((Path(__file__).parent / "specs" / "klaviyo_schemas.json").read_text())
OPERATIONS = SPEC["operations"]
JSONAPI = "application/vnd.api+json"


def strict(schema: Any) -> Any:
    """The schema with `additionalProperties: false` wherever properties are listed."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    tightened = {key: strict(value) for key, value in schema.items()}
    if "properties" in schema and "additionalProperties" not in schema:
        tightened["additionalProperties"] = False
    return tightened


FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    return not isinstance(value, str) or bool(datetime.fromisoformat(value).tzinfo)


VALIDATORS = {
    name: Draft7Validator(strict(op["schema"]), format_checker=FORMATS)
    for name, op in OPERATIONS.items()
}
ROUTES = [
    (op["method"], re.compile("^" + re.sub(r"\{\w+\}", "[^/]+", op["path"]) + "/?$"), name)
    for name, op in OPERATIONS.items()
]


def operation_of(method: str, path: str) -> str:
    names = [name for m, regex, name in ROUTES if m == method and regex.match(path)]
    assert names, (
        f"no schema copied for {method} {path}: add it to tests/specs/klaviyo_schemas.json"
    )
    return names[0]


def errors_of(operation: str, body: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in VALIDATORS[operation].iter_errors(body)
    ]


def exercise_every_path(world: World, sales: int) -> None:
    """Single and bulk profile imports, list moves, subscribe, unsubscribe, single and bulk events,
    cleared values (null, unset) and a conflict retry, against the sandbox."""
    won_list, lost_list = world.klaviyo.add_list("Won"), world.klaviyo.add_list("Lost")
    world.with_klaviyo(
        events_since="2025-01-01",
        phone_region="DE",
        lists_by_stage={"won": won_list, "lost": lost_list},
    )
    company = world.kommo.add_company("Acme")
    ada = world.kommo.add_contact(
        "Ada",
        "Lovelace",
        email="ada@acme.io",
        phone="030 1234567",
        company_id=company,
        consent=True,
    )
    world.kommo.add_contact("Bob", email="bob@acme.io", phone="030 1234567")
    lead = world.kommo.add_lead("Engines", 5000, sales, contact_ids=[ada])
    world.run()  # the single paths
    world.clock.advance(3600)
    many = [
        world.kommo.add_contact(f"P{n}", email=f"p{n}@firm.io", consent=True) for n in range(14)
    ]
    for cid in many:
        world.kommo.add_lead(f"Deal {cid}", 10, sales, contact_ids=[cid])
    world.kommo.move_lead(lead, 142)
    world.kommo.update_contact(ada, phone=None)
    world.run()  # the bulk paths
    world.clock.advance(3600)
    world.kommo.update_contact(many[0], consent=False)
    world.kommo.move_lead(lead, 143)
    world.run()  # unsubscribe, lost


def test_every_body_we_send_validates_against_klaviyos_spec(world, sales):
    exercise_every_path(world, sales)
    seen: set[str] = set()
    for request in world.klaviyo.writes():
        operation = operation_of(request.method, request.path)
        seen.add(operation)
        assert errors_of(operation, request.json()) == [], f"{request.method} {request.path}"
    assert seen == set(OPERATIONS)


def exercise_field_map_and_sms(world: World, sales: int) -> None:
    """Mapped properties of every JSON type (set, then unset), kommo_tags, and SMS consent on an
    age-gated account given, refused (no date of birth) and withdrawn, single and bulk."""
    world.klaviyo.age_gated = True
    box = world.kommo.add_custom_field("SMS consent", "checkbox")
    born = world.kommo.add_custom_field("Date of birth", "birthday")
    interests = world.kommo.add_custom_field("Topics", "multiselect", enum_values=["A", "B"])
    world.with_klaviyo(
        phone_region="DE",
        fields=[{"from": "contact.Topics", "to": "topics"}],
        kommo_tags={"from": ["contact", "lead"]},
        sms_consent_field="SMS consent",
        age_gated=True,
        birthday_field="Date of birth",
    )
    people = [
        world.kommo.add_contact(f"P{n}", email=f"p{n}@firm.io", phone=f"+49 30 12345{n:02}")
        for n in range(12)
    ]
    for n, cid in enumerate(people):
        world.kommo.add_lead(f"Deal {n}", 10, sales, contact_ids=[cid])
        world.kommo.tag("contacts", cid, "vip")
        world.kommo.set_field_values("contacts", cid, box, [{"value": True}])
        world.kommo.set_field_values("contacts", cid, interests, [{"value": "A"}, {"value": "B"}])
        if n:
            world.kommo.set_field_values("contacts", cid, born, [{"value": 647049600}])
    world.run()  # bulk imports, SMS subscriptions with dates of birth
    world.clock.advance(3600)
    world.kommo.set_field_values("contacts", people[1], box, [{"value": False}])
    world.kommo.clear_field_values("contacts", people[1], interests)
    world.run()  # single import with unset, SMS unsubscribe


def test_field_map_and_sms_bodies_validate_against_klaviyos_spec(world, sales):
    exercise_field_map_and_sms(world, sales)
    sms_jobs = 0
    for request in world.klaviyo.writes():
        operation = operation_of(request.method, request.path)
        assert errors_of(operation, request.json()) == [], f"{request.method} {request.path}"
        sms_jobs += operation.startswith("bulk_") and '"sms"' in request.body.decode()
    assert sms_jobs == 2


def test_every_request_carries_the_key_the_revision_and_json_api_media_types(world, sales):
    exercise_every_path(world, sales)
    for request in world.klaviyo.log:
        assert request.headers["authorization"] == f"Klaviyo-API-Key {KLAVIYO_KEY}"
        assert request.headers["revision"] == SPEC["revision"]
        assert request.headers["accept"] == JSONAPI
        if request.body:
            assert request.headers["content-type"] == JSONAPI


def test_the_copied_schemas_do_catch_wrong_bodies():
    event = {
        "data": {
            "type": "event",
            "attributes": {
                "properties": {},
                "time": "2026-01-01T00:00:00+00:00",
                "metric": {"data": {"type": "metric", "attributes": {"name": "Deal Won"}}},
                "profile": {"data": {"type": "profile", "attributes": {"email": "a@b.io"}}},
            },
        }
    }
    assert errors_of("create_event", event) == []
    wrong = copy.deepcopy(event)
    wrong["data"]["attributes"]["metirc"] = wrong["data"]["attributes"].pop("metric")
    assert errors_of("create_event", wrong)
    naive_time = copy.deepcopy(event)
    naive_time["data"]["attributes"]["time"] = "yesterday"
    assert errors_of("create_event", naive_time)
    consent = {
        "data": {
            "type": "profile-subscription-bulk-create-job",
            "attributes": {
                "profiles": {
                    "data": [
                        {
                            "type": "profile",
                            "attributes": {
                                "email": "a@b.io",
                                "subscriptions": {
                                    "email": {"marketing": {"consent": "UNSUBSCRIBED"}}
                                },
                            },
                        }
                    ]
                }
            },
        }
    }
    assert errors_of("bulk_subscribe_profiles", consent)
