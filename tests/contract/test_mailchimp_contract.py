"""Contract: every request body kommo-sync writes to Mailchimp validates against the spec.

Real runs against the sandboxes exercise each request kind; every logged write (and every
operation inside a /batches job) is then checked against the request schema of its method and
path template (spec 3.0.76 + tests/specs/mailchimp_overlay.json), key by key, plus the rules the
spec cannot express: no `sync_tags: true`, no `status: subscribed`, ≤ 500 per bulk call.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator

from tests.e2e.test_mailchimp_fields import EXPECTED, field_of, person_with_a_deal

SPECS = Path(__file__).parent / "specs"
API_ROOT = "/3.0"
BULK_LIMIT = 500

PUT_MEMBER = "PUT /lists/{list_id}/members/{subscriber_hash}"
PATCH_MEMBER = "PATCH /lists/{list_id}/members/{subscriber_hash}"
BATCH_SUBSCRIBE = "POST /lists/{list_id}"
MEMBER_TAGS = "POST /lists/{list_id}/members/{subscriber_hash}/tags"
CREATE_SEGMENT = "POST /lists/{list_id}/segments"
SEGMENT_MEMBERS = "POST /lists/{list_id}/segments/{segment_id}"
MERGE_FIELDS = "POST /lists/{list_id}/merge-fields"
MERGE_FIELD_CHOICES = "PATCH /lists/{list_id}/merge-fields/{merge_id}"
BATCHES = "POST /batches"


# schemas ---------------------------------------------------------------------------------------
def load_schemas(with_overlay: bool = True) -> dict[str, dict[str, Any]]:
    """Request key ("METHOD /template") → JSON schema, with the overlay applied."""
    copied = json.loads((SPECS / "mailchimp_schemas.json").read_text())
    schemas = {key: entry["schema"] for key, entry in copied["requests"].items()}
    if with_overlay:
        apply_overlay(schemas, json.loads((SPECS / "mailchimp_overlay.json").read_text()))
    return schemas


def apply_overlay(schemas: dict[str, dict[str, Any]], overlay: dict[str, Any]) -> None:
    """RFC 6902 add/replace at a JSON pointer; a patch that no longer fits the copy fails loudly."""
    for patch in overlay["patches"]:
        *parents, key = [
            part.replace("~1", "/").replace("~0", "~") for part in patch["path"].split("/")[1:]
        ]
        node = schemas[patch["request"]]
        for part in parents:
            node = node[part]
        assert (key in node) == (patch["op"] == "replace"), (
            f"overlay {patch['op']} {patch['path']} no longer fits"
        )
        node[key] = _inline_definitions(copy.deepcopy(patch["value"]), overlay["definitions"])


def _inline_definitions(value: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(value, dict) and set(value) == {"$ref"}:
        return copy.deepcopy(definitions[value["$ref"].rsplit("/", 1)[1]])
    return value


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{\w+\\\}", "[^/?]+", re.escape(template)) + "$")


class Contract:
    """Checks one request (method, path relative to /3.0, parsed body) against the schemas."""

    def __init__(self, schemas: dict[str, dict[str, Any]]):
        self.schemas = schemas
        self.routes = [
            (key.split(" ", 1)[0], _template_regex(key.split(" ", 1)[1]), key) for key in schemas
        ]
        self.seen: set[str] = set()

    def kind(self, method: str, path: str) -> str | None:
        bare = path.split("?", 1)[0]
        return next(
            (key for verb, regex, key in self.routes if verb == method and regex.match(bare)), None
        )

    def problems(self, method: str, path: str, body: Any, batch_op: str = "") -> list[str]:
        """Schema errors, unknown keys and policy breaches; `batch_op` names a /batches
        operation."""
        where = batch_op or f"{method} {path}"
        key = self.kind(method, path)
        if key is None:
            return [f"{where}: no known schema for this write"]
        self.seen.add(f"batch {key}" if batch_op else key)
        found = [
            f"{where}: {error.message} at {list(error.absolute_path)}"
            for error in Draft4Validator(
                self.schemas[key], format_checker=Draft4Validator.FORMAT_CHECKER
            ).iter_errors(body)
        ]
        found += [f"{where}: unknown key {name}" for name in unknown_keys(self.schemas[key], body)]
        found += [f"{where}: {rule}" for rule in policy_problems(key, path, body)]
        if key == BATCHES and isinstance(body, dict):
            found += self._operation_problems(body.get("operations") or [])
        return found

    def _operation_problems(self, operations: list[dict[str, Any]]) -> list[str]:
        found = []
        for index, operation in enumerate(operations):
            where = f"batch op {index} {operation.get('method')} {operation.get('path')}"
            try:
                body = json.loads(operation.get("body") or "null")
            except (TypeError, ValueError):
                found.append(f"{where}: body is not a JSON string")
                continue
            found += self.problems(
                str(operation.get("method")), str(operation.get("path")), body, where
            )
        return found


def unknown_keys(schema: dict[str, Any], body: Any, at: str = "") -> Iterator[str]:
    """Keys the schema does not name, wherever it lists properties (the spec leaves extras open)."""
    if isinstance(body, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(body):
            yield from unknown_keys(schema["items"], item, f"{at}[{index}]")
    if not isinstance(body, dict):
        return
    properties = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for name, value in body.items():
        if name in properties:
            yield from unknown_keys(properties[name], value, f"{at}.{name}")
        elif isinstance(extra, dict):
            yield from unknown_keys(extra, value, f"{at}.{name}")
        elif properties and extra is None:
            yield f"{at}.{name}".lstrip(".")


def policy_problems(key: str, path: str, body: Any) -> list[str]:
    """What the spec allows but kommo-sync must never do."""
    found = []
    if any(d.get("sync_tags") is True for d in _dicts(body)):
        found.append("sync_tags: true wipes a marketer's tags")
    if any(d.get("status") == "subscribed" for d in _dicts(body)):
        found.append("status: subscribed may re-subscribe someone who opted out")
    if not isinstance(body, dict):
        return found
    if key == BATCH_SUBSCRIBE:
        found += _batch_subscribe_problems(body)
    if key == SEGMENT_MEMBERS:
        found += [
            f"{side} has more than {BULK_LIMIT} emails"
            for side in ("members_to_add", "members_to_remove")
            if len(body.get(side) or []) > BULK_LIMIT
        ]
    if key == PUT_MEMBER and path.split("?")[0].rsplit("/", 1)[1] != _md5(
        body.get("email_address", "")
    ):
        found.append("PUT path hash is not md5 of the body's email_address")
    return found


def _batch_subscribe_problems(body: dict[str, Any]) -> list[str]:
    found = []
    if len(body.get("members") or []) > BULK_LIMIT:
        found.append(f"batch subscribe with more than {BULK_LIMIT} members")
    if body.get("update_existing") is not False:
        found.append("batch subscribe must send update_existing: false")
    return found


def _dicts(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _dicts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _dicts(item)


def _md5(email: str) -> str:
    return hashlib.md5(email.strip().lower().encode("utf-8")).hexdigest()


def checked_writes(world) -> set[str]:
    """Validate every write the Mailchimp sandbox logged; return the request kinds seen."""
    contract = Contract(load_schemas())
    writes = world.mailchimp.writes()
    assert writes, "the scenario sent no write to Mailchimp"
    found = []
    for write in writes:
        assert write.path.startswith(API_ROOT + "/"), write.path
        found += contract.problems(write.method, write.path[len(API_ROOT) :], write.json())
    assert not found, "\n".join(found)
    return contract.seen


# scenarios -------------------------------------------------------------------------------------
def test_small_runs_send_valid_put_patch_tags_and_merge_field_bodies(world, sales):
    world.with_mailchimp()
    world.mailchimp.add_member(world.list_id, "cy@stone.io", status="unsubscribed")
    acme = world.kommo.add_company("Acme GmbH")
    ada = world.kommo.add_contact(
        "Ada",
        "Lovelace",
        email="ada@analytical.io",
        phone="+49 30 1234567",
        company_id=acme,
        consent=True,
        lead_source="Webinar",
    )
    deal = world.kommo.add_lead(
        "Engines", 5000, sales, world.status_id(sales, "Proposal"), contact_ids=[ada]
    )
    world.kommo.add_contact(
        "Bob", "Stone", email="bob@stone.io", consent=False
    )  # skip: PATCH if there
    cy = world.kommo.add_contact("Cy", "Stone", email="cy@stone.io", consent=True)
    assert world.run().rejected == 0
    world.clock.advance(60)
    world.kommo.update_contact(ada, email="ada@lovelace.io")
    world.kommo.move_lead(deal, 142)
    world.kommo.update_contact(cy, consent=False)
    assert world.run().rejected == 0
    seen = checked_writes(world)
    assert {PUT_MEMBER, PATCH_MEMBER, MEMBER_TAGS, MERGE_FIELDS} <= seen
    assert not seen & {BATCH_SUBSCRIBE, BATCHES}


def test_a_large_first_sync_sends_valid_batch_subscribe_segment_and_batch_bodies(world, sales):
    world.with_mailchimp()
    for email, status in (("gone@firm.io", "unsubscribed"), ("bounced@firm.io", "cleaned")):
        world.mailchimp.add_member(world.list_id, email, status=status)
        known = world.kommo.add_contact("Known", email=email, consent=True)
        world.kommo.add_lead(
            "Deal", 10, sales, world.status_id(sales, "Qualified"), contact_ids=[known]
        )
    for i in range(30):
        world.kommo.add_contact(f"P{i}", "Firm", email=f"p{i}@firm.io", consent=True)
    world.kommo.add_contact("Fake", email="test@example.com", consent=True)
    result = world.run()
    assert result.rejected == 1  # the fake address, with a reason
    seen = checked_writes(world)
    assert {
        BATCH_SUBSCRIBE,
        BATCHES,
        f"batch {PUT_MEMBER}",
        CREATE_SEGMENT,
        f"batch {SEGMENT_MEMBERS}",
        MERGE_FIELDS,
    } <= seen
    assert SEGMENT_MEMBERS not in seen  # tag moves ride in the /batches job
    assert world.mailchimp.member(world.list_id, "gone@firm.io")["status"] == "unsubscribed"


def test_large_incremental_updates_send_valid_batch_operations(world, sales):
    world.with_mailchimp()
    people = [
        world.kommo.add_contact(f"P{i}", "Firm", email=f"p{i}@firm.io", consent=True)
        for i in range(30)
    ]
    deals = [
        world.kommo.add_lead(
            f"D{i}", 10, sales, world.status_id(sales, "Qualified"), contact_ids=[person]
        )
        for i, person in enumerate(people)
    ]
    world.run()
    world.clock.advance(60)
    for i in range(0, 6):
        world.kommo.update_contact(people[i], email=f"renamed{i}@firm.io")
    for i in range(6, 11):
        world.kommo.update_contact(people[i], consent=False)
    for i in range(11, 19):
        world.kommo.update_contact(people[i], first_name=f"New{i}")
    for deal in deals[19:25]:
        world.kommo.move_lead(deal, 142)
    result = world.run()
    assert result.rejected == 0
    seen = checked_writes(world)
    assert {BATCHES, f"batch {PATCH_MEMBER}", CREATE_SEGMENT, f"batch {SEGMENT_MEMBERS}"} <= seen
    operations = [
        json.loads(op["body"])
        for w in world.mailchimp.writes()
        if w.path == "/3.0/batches"
        for op in w.json()["operations"]
    ]
    assert any(body.get("email_address") == "renamed0@firm.io" for body in operations)
    assert any(body.get("status") == "unsubscribed" for body in operations)


def test_more_than_500_people_are_split_into_valid_chunks(world, sales):
    world.with_mailchimp(without_consent="transactional")
    people = [
        world.kommo.add_contact(f"P{i}", email=f"p{i}@firm.io", consent=i % 2 == 0)
        for i in range(520)
    ]
    deals = [
        world.kommo.add_lead(
            f"D{i}", 10, sales, world.status_id(sales, "Qualified"), contact_ids=[person]
        )
        for i, person in enumerate(people)
    ]
    assert world.run().rejected == 0
    world.clock.advance(60)
    for deal in deals:
        world.kommo.move_lead(deal, 142)
    assert world.run().rejected == 0
    checked_writes(world)
    subscribes = [
        w.json() for w in world.mailchimp.writes() if w.path == f"/3.0/lists/{world.list_id}"
    ]
    assert sorted(len(body["members"]) for body in subscribes) == [20, 500]
    assert {m["status_if_new"] for body in subscribes for m in body["members"]} == {
        "subscribed",
        "transactional",
    }
    moves = [
        json.loads(op["body"])
        for w in world.mailchimp.writes()
        if w.path == "/3.0/batches"
        for op in w.json()["operations"]
        if "/segments/" in op["path"]
    ]
    assert not [w.path for w in world.mailchimp.writes() if re.search(r"/segments/\d+$", w.path)]
    assert sorted(len(body["members_to_add"]) for body in moves if body["members_to_add"]) == [
        20,
        500,
    ]
    assert sorted(
        len(body["members_to_remove"]) for body in moves if body["members_to_remove"]
    ) == [20, 500]


# the checker itself ------------------------------------------------------------------------------
def test_a_write_to_a_path_without_a_schema_fails():
    contract = Contract(load_schemas())
    assert contract.problems("DELETE", "/lists/abc/members/x", None) == [
        "DELETE /lists/abc/members/x: no known schema for this write"
    ]
    batch = {"operations": [{"method": "POST", "path": "/lists/abc/webhooks", "body": "{}"}]}
    assert any("no known schema" in p for p in contract.problems("POST", "/batches", batch))


def test_the_checker_catches_unknown_keys_bad_values_and_forbidden_choices():
    contract = Contract(load_schemas())
    member = {
        "email_address": "a@b.io",
        "status_if_new": "subscribed",
        "merge_fields": {"FNAME": "A"},
    }
    assert contract.problems("PUT", f"/lists/abc/members/{_md5('a@b.io')}", member) == []
    assert any(
        "unknown key nickname" in p
        for p in contract.problems(
            "PUT", f"/lists/abc/members/{_md5('a@b.io')}", {**member, "nickname": "A"}
        )
    )
    assert any(
        "'bogus' is not one of" in p
        for p in contract.problems("PATCH", "/lists/abc/members/h", {"status": "bogus"})
    )
    assert any(
        "re-subscribe" in p
        for p in contract.problems("PATCH", "/lists/abc/members/h", {"status": "subscribed"})
    )
    assert any("md5" in p for p in contract.problems("PUT", "/lists/abc/members/0000", member))
    wipe = {"members": [{"email_address": "a@b.io", "status_if_new": "pending"}], "sync_tags": True}
    found = contract.problems("POST", "/lists/abc", wipe)
    assert any("sync_tags" in p for p in found) and any("update_existing" in p for p in found)
    ops = {
        "operations": [
            {"method": "PATCH", "path": "/lists/abc/members/h", "body": '{"email": "x"}'}
        ]
    }
    assert any(
        "batch op 0" in p and "unknown key email" in p
        for p in contract.problems("POST", "/batches", ops)
    )


def test_the_overlay_admits_the_newer_batch_fields_and_nothing_looser():
    item = {
        "email_address": "a@b.io",
        "status_if_new": "transactional",
        "tags": ["New Lead"],
        "merge_fields": {"FNAME": "A"},
    }
    body = {"members": [item], "update_existing": False}
    assert Contract(load_schemas()).problems("POST", "/lists/abc", body) == []
    bare = Contract(load_schemas(with_overlay=False)).problems("POST", "/lists/abc", body)
    assert any("unknown key members[0].tags" in p for p in bare)
    assert any("unknown key members[0].status_if_new" in p for p in bare)
    assert any("is not of type 'object'" in p for p in bare)  # 3.0.76's merge value type
    contract = Contract(load_schemas())
    assert any(
        "is not valid under any of the given schemas" in p
        for p in contract.problems(
            "POST",
            "/lists/abc",
            {"members": [{"email_address": "a@b.io"}], "update_existing": False},
        )
    )
    tag_objects = {"members": [{**item, "tags": [{"name": "x"}]}], "update_existing": False}
    assert contract.problems("POST", "/lists/abc", tag_objects) == [
        "POST /lists/abc: {'name': 'x'} is not of type 'string' at ['members', 0, 'tags', 0]"
    ]


def test_a_field_map_sends_valid_merge_field_creates_choice_patches_and_typed_values(world, sales):
    records = person_with_a_deal(world, sales)
    world.kommo.tag("contacts", records["contacts"], "vip")
    world.mailchimp.add_merge_field(
        world.list_id, "F06", "Client", "dropdown", options={"choices": ["New"]}
    )
    entries = [
        {"from": field_of(world, kind, records)[1], "to": f"F{n:02d}"}
        for n, kind in enumerate(EXPECTED)
    ]
    for i in range(12):  # enough people for batch subscribe and a /batches job
        world.kommo.add_contact(f"P{i}", email=f"p{i}@firm.io", consent=True)
    world.with_mailchimp(fields=entries, kommo_tags={"from": ["contact", "lead"]})
    assert world.run().rejected == 0
    world.clock.advance(60)
    world.kommo.untag("contacts", records["contacts"], "vip")
    assert world.run().rejected == 0
    seen = checked_writes(world)
    assert {MERGE_FIELDS, MERGE_FIELD_CHOICES, BATCH_SUBSCRIBE} <= seen
    creates = [w.json() for w in world.mailchimp.writes() if w.path.endswith("/merge-fields")]
    assert {c["type"] for c in creates} >= {"number", "date", "birthday", "radio", "url"}
    subscribed = [
        m
        for w in world.mailchimp.writes()
        if w.path == f"/3.0/lists/{world.list_id}"
        for m in w.json()["members"]
    ]
    ada = next(m for m in subscribed if m["email_address"] == "ada@acme.io")
    assert ada["merge_fields"]["F10"] == "03/15/2024" and "kommo:vip" in ada["tags"]
