"""End to end, through the CLI: the Klaviyo field map (Kommo fields of every type → profile
properties with JSON types), kommo_tags, SMS consent (given, withdrawn, opted out in Klaviyo),
the age gate, and config errors."""

from __future__ import annotations

from typing import Any

from kommo_sync.sandbox.kommo.field_types import FIELDS, SAMPLES, TIMEZONE
from tests.conftest import World

ENTITY_PREFIX = {"contacts": "contact", "leads": "lead", "companies": "company"}
SMS_METRIC = "Unsubscribed from SMS Marketing"


def run(world: World, *args: str) -> dict[str, Any]:
    code, body = world.cli_json("run", *args)
    assert code == 0, body
    return body


def profile(world: World, email: str = "ada@acme.io") -> dict[str, Any]:
    found = world.klaviyo.profile_by_email(email)
    assert found is not None
    return found


def sms_of(world: World, email: str = "ada@acme.io") -> str:
    return str(profile(world, email)["subscriptions"]["sms"]["marketing"]["consent"])


def ada(world: World, sales: int, phone: str | None = "+49 30 1234567") -> tuple[int, int]:
    """Ada with an Acme company and one lead; (contact id, lead id)."""
    company = world.kommo.add_company("Acme")
    contact = world.kommo.add_contact(
        "Ada", "Lovelace", email="ada@acme.io", phone=phone, company_id=company, consent=True
    )
    lead = world.kommo.add_lead("Engines", 5000, sales, contact_ids=[contact])
    return contact, lead


# every type --------------------------------------------------------------------------------------
def every_type(world: World, sales: int) -> tuple[dict[str, int], dict[str, int]]:
    """One field of each of Kommo's 23 types on Ada, her lead or her company, each mapped to a
    property named after its type, by id (the sandbox's standard fields share some names);
    (field ids by type, record ids by entity)."""
    world.kommo.set_account(timezone=TIMEZONE)
    contact, lead = ada(world, sales)
    company = world.kommo.contacts[contact]["company_id"]
    records = {"contacts": contact, "leads": lead, "companies": company}
    ids, entries = {}, []
    for kind, definition in FIELDS.items():
        entity = definition["entity_type"]
        extra = {"enums": definition["enums"]}
        ids[kind] = world.kommo.add_custom_field(
            definition["name"], kind, entity=entity, extra=extra
        )
        world.kommo.set_field_values(entity, records[entity], ids[kind], SAMPLES[kind][0])
        entries.append({"from": f"{ENTITY_PREFIX[entity]}.{ids[kind]}", "to": f"k_{kind}"})
    world.with_klaviyo(phone_region="DE", fields=entries)
    return ids, records


EXPECTED = {
    "k_text": "Head of Procurement",
    "k_textarea": "Met at the Berlin fair.\nPrefers calls after 3pm.",
    "k_numeric": 250,
    "k_price": 1999,
    "k_monetary": 125000.5,
    "k_checkbox": True,
    "k_select": "Regular",
    "k_radiobutton": "Email",
    "k_multiselect": ["Webinars", "News"],
    "k_multitext": ["@acme_jane", "jane.doe"],
    "k_date": "2024-03-15",
    "k_birthday": "1990-07-04",
    "k_url": "https://acme.example/",
    "k_streetaddress": "Tverskaya 7, Moscow",
    "k_category": "Hardware",
    "k_tracking_data": "google",
}


def test_one_field_of_each_kommo_type_becomes_a_property_of_its_json_type_in_one_run(world, sales):
    every_type(world, sales)
    body = run(world)
    properties = profile(world)["properties"]
    assert {k: properties[k] for k in EXPECTED} == EXPECTED
    assert (
        properties["k_date_time"].startswith("2024-09-17T")
        and "+03:00" in properties["k_date_time"]
    )
    assert properties["k_smart_address"]["city"] == "Moscow"
    assert properties["k_legal_entity"]["vat_id"] == "7701234567"
    assert [line["sku"] for line in properties["k_items"]] == ["W-1", "G-7"]
    assert isinstance(properties["k_linked_entity"], dict)
    assert isinstance(properties["k_file"], dict)
    assert isinstance(properties["k_chained_list"], dict | list)
    assert set(properties) >= {f"k_{kind}" for kind in FIELDS}
    assert properties["crm_stage"] and properties["kommo_contact_id"]  # ours stay beside them
    assert body["counts"]["klaviyo.create"] == 1


def test_a_cleared_value_removes_the_property_and_an_unchanged_one_plans_nothing(world, sales):
    ids, records = every_type(world, sales)
    run(world)
    world.clock.advance(3600)
    assert run(world)["counts"].get("klaviyo.update", 0) == 0
    world.clock.advance(3600)
    world.kommo.clear_field_values("contacts", records["contacts"], ids["text"])
    world.kommo.clear_field_values("leads", records["leads"], ids["price"])
    body = run(world)
    assert body["counts"]["klaviyo.update"] == 1
    properties = profile(world)["properties"]
    assert "k_text" not in properties and "k_price" not in properties
    assert properties["k_numeric"] == 250


# kommo tags --------------------------------------------------------------------------------------
def test_kommo_tags_of_the_contact_and_its_lead_are_one_sorted_array(world, sales):
    contact, lead = ada(world, sales)
    world.kommo.tag("contacts", contact, "vip", "berlin")
    world.kommo.tag("leads", lead, "enterprise", "vip")
    world.with_klaviyo(kommo_tags={"from": ["contact", "lead"]})
    run(world)
    assert profile(world)["properties"]["kommo_tags"] == ["berlin", "enterprise", "vip"]
    world.clock.advance(3600)
    world.kommo.untag("contacts", contact, "vip", "berlin")
    world.kommo.untag("leads", lead, "enterprise", "vip")
    run(world)
    assert "kommo_tags" not in profile(world)["properties"]


# SMS consent -------------------------------------------------------------------------------------
def with_sms(world: World, **overrides: Any) -> int:
    field_id = world.kommo.add_custom_field("SMS consent", "checkbox")
    world.with_klaviyo(phone_region="DE", sms_consent_field="SMS consent", **overrides)
    return field_id


def test_sms_consent_subscribes_the_phone_and_an_unchecked_box_unsubscribes_it(world, sales):
    box = with_sms(world)
    contact, _ = ada(world, sales)
    world.kommo.set_field_values("contacts", contact, box, [{"value": True}])
    run(world)
    assert sms_of(world) == "SUBSCRIBED"
    assert profile(world)["phone_number"] == "+49301234567"
    assert profile(world)["subscriptions"]["email"]["marketing"]["consent"] == "SUBSCRIBED"
    world.clock.advance(3600)
    world.kommo.set_field_values("contacts", contact, box, [{"value": False}])
    run(world)
    assert sms_of(world) == "UNSUBSCRIBED"
    assert profile(world)["subscriptions"]["email"]["marketing"]["consent"] == "SUBSCRIBED"
    world.clock.advance(3600)
    world.kommo.set_field_values("contacts", contact, box, [{"value": True}])
    run(world)  # fresh consent after our own unsubscribe: subscribed again
    assert sms_of(world) == "SUBSCRIBED"


def test_an_sms_opt_out_in_klaviyo_is_never_subscribed_again_and_email_goes_on(world, sales):
    box = with_sms(world)
    contact, _ = ada(world, sales)
    world.kommo.set_field_values("contacts", contact, box, [{"value": True}])
    run(world)
    world.clock.advance(600)
    world.klaviyo.unsubscribe_sms("ada@acme.io")
    world.clock.advance(3600)
    world.kommo.set_field_values("contacts", contact, box, [{"value": False}])
    run(world)
    notes = [n for n in world.kommo.notes if n["entity_type"] == "contacts"]
    [note] = [n["params"]["text"] for n in notes]  # on the contact, once (and its open deal)
    assert note.startswith("Unsubscribed from Klaviyo SMS marketing on ")
    assert note.endswith("Do not include in SMS campaigns.")
    world.clock.advance(3600)
    world.kommo.set_field_values("contacts", contact, box, [{"value": True}])
    body = run(world)
    assert sms_of(world) == "UNSUBSCRIBED"
    assert body["counts"]["klaviyo.sms.kept_unsubscribed"] == 1
    assert profile(world)["subscriptions"]["email"]["marketing"]["consent"] == "SUBSCRIBED"
    assert len(world.klaviyo.events(SMS_METRIC)) == 2  # ours, then Ada's STOP: no third
    assert len([n for n in world.kommo.notes if n["entity_type"] == "contacts"]) == 1


def test_a_phone_that_is_not_e164_gets_no_sms_subscription_and_is_counted(world, sales):
    box = with_sms(world)
    contact, _ = ada(world, sales, phone="12")
    world.kommo.set_field_values("contacts", contact, box, [{"value": True}])
    body = run(world)
    assert body["counts"]["klaviyo.sms.bad_phone"] == 1
    assert sms_of(world) == "NEVER_SUBSCRIBED"
    assert profile(world)["subscriptions"]["email"]["marketing"]["consent"] == "SUBSCRIBED"


# age gate ----------------------------------------------------------------------------------------
def test_an_age_gated_account_gets_the_date_of_birth_and_refusals_are_rejections(world, sales):
    world.klaviyo.age_gated = True
    box = with_sms(world, age_gated=True, birthday_field="Date of birth")
    birthday = world.kommo.add_custom_field("Date of birth", "birthday")
    contact, _ = ada(world, sales)
    world.kommo.set_field_values("contacts", contact, box, [{"value": True}])
    world.kommo.set_field_values("contacts", contact, birthday, [{"value": 647049600}])
    young = world.kommo.add_contact("Kid", email="kid@acme.io", phone="+49 30 7654321")
    world.kommo.set_field_values("contacts", young, box, [{"value": True}])
    world.kommo.set_field_values(
        "contacts", young, birthday, [{"value": int(world.clock.now()) - 10 * 365 * 86400}]
    )
    nobirth = world.kommo.add_contact("No", email="no@acme.io", phone="+49 30 7654322")
    world.kommo.set_field_values("contacts", nobirth, box, [{"value": True}])
    code, body = world.cli_json("run")
    assert code != 0
    assert sms_of(world) == "SUBSCRIBED"
    subscribe = [
        r.json()
        for r in world.klaviyo.writes()
        if r.path == "/api/profile-subscription-bulk-create-jobs" and "sms" in str(r.json())
    ]
    rows = [
        row["attributes"] for b in subscribe for row in b["data"]["attributes"]["profiles"]["data"]
    ]
    assert {"email": "ada@acme.io", "age_gated_date_of_birth": "1990-07-04"}.items() <= rows[
        0
    ].items()
    assert body["counts"]["klaviyo.sms.no_birthday"] == 1
    rejected = {r["email"]: r["reason"] for r in body["rejections"]}
    assert "age-gating" in rejected["kid@acme.io"]
    assert sms_of(world, "kid@acme.io") == "NEVER_SUBSCRIBED"


# config errors -----------------------------------------------------------------------------------
def test_an_unknown_field_is_a_config_error_with_a_did_you_mean(world, sales):
    world.kommo.add_custom_field("Industry", "text")
    ada(world, sales)
    world.with_klaviyo(fields=[{"from": "contact.Industy", "to": "industry"}])
    result = world.cli("run")
    assert result.exit_code == 2
    assert "klaviyo.fields[0].from" in result.output and "Industry" in result.output


def test_a_reserved_property_or_a_checkbox_that_is_not_one_is_a_config_error(world, sales):
    ada(world, sales)
    world.with_klaviyo(fields=[{"from": "contact.name", "to": "crm_stage"}])
    result = world.cli("run")
    assert result.exit_code == 2 and "klaviyo.fields[0].to" in result.output
    world.kommo.add_custom_field("SMS consent", "text")
    world.with_klaviyo(sms_consent_field="SMS consent")
    result = world.cli("run")
    assert result.exit_code == 2
    assert "klaviyo.sms_consent_field" in result.output and "checkbox" in result.output
