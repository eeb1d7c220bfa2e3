"""The Klaviyo sandbox's SMS consent (bulk subscribe/unsubscribe for the sms channel, E.164,
the profile's `subscriptions.sms.marketing`), SMS opt-outs, age-gated accounts, and custom
properties of every JSON type stored as given."""

from __future__ import annotations

from typing import Any

from kommo_sync.sandbox.klaviyo import KlaviyoSandbox
from tests.sandbox import test_sandbox_klaviyo as base
from tests.sandbox.test_sandbox_klaviyo import Client, profile_body

# The Klaviyo sandbox tests' fixtures, shared rather than copied.
server, clock, app, api = base.server, base.clock, base.app, base.api

SUBSCRIBE = "/api/profile-subscription-bulk-create-jobs"
UNSUBSCRIBE = "/api/profile-subscription-bulk-delete-jobs"


def sms_job(kind: str, consent: str, **attributes: Any) -> dict[str, Any]:
    row = {
        "type": "profile",
        "attributes": {**attributes, "subscriptions": {"sms": {"marketing": {"consent": consent}}}},
    }
    return {"data": {"type": kind, "attributes": {"profiles": {"data": [row]}}}}


def subscribe(api: Client, **attributes: Any) -> Any:
    body = sms_job("profile-subscription-bulk-create-job", "SUBSCRIBED", **attributes)
    return api.call("POST", SUBSCRIBE, body)


def sms_marketing(app: KlaviyoSandbox, email: str = "ada@acme.io") -> dict[str, Any]:
    found = app.profile_by_email(email)
    assert found is not None
    return dict(found["subscriptions"]["sms"]["marketing"])


def test_sms_subscribe_and_unsubscribe_jobs_move_the_sms_consent_only(api, app):
    app.add_profile("ada@acme.io", subscribed=True)
    assert subscribe(api, email="ada@acme.io", phone_number="+4915123456789").status_code == 202
    marketing = sms_marketing(app)
    assert (marketing["consent"], marketing["can_receive_sms_marketing"]) == ("SUBSCRIBED", True)
    assert app.profile_by_email("ada@acme.io")["phone_number"] == "+4915123456789"
    body = sms_job("profile-subscription-bulk-delete-job", "UNSUBSCRIBED", email="ada@acme.io")
    assert api.call("POST", UNSUBSCRIBE, body).status_code == 202
    assert sms_marketing(app)["consent"] == "UNSUBSCRIBED"
    email = app.profile_by_email("ada@acme.io")["subscriptions"]["email"]["marketing"]
    assert email["consent"] == "SUBSCRIBED"
    assert [e["metric"] for e in app.events() if "SMS" in e["metric"]] == [
        "Subscribed to SMS Marketing",
        "Unsubscribed from SMS Marketing",
    ]


def test_sms_consent_needs_an_e164_phone(api, app):
    no_phone = subscribe(api, email="ada@acme.io")
    assert no_phone.status_code == 400
    assert no_phone.json()["errors"][0]["source"]["pointer"].endswith("/phone_number")
    bad = subscribe(api, email="ada@acme.io", phone_number="030 1234567")
    assert bad.status_code == 400 and "Invalid phone number" in bad.text


def test_an_age_gated_account_refuses_sms_consent_without_an_adult_date_of_birth(api, app):
    app.age_gated = True
    missing = subscribe(api, email="ada@acme.io", phone_number="+4915123456789")
    assert missing.status_code == 400 and "age-gating" in missing.json()["errors"][0]["detail"]
    young = subscribe(
        api,
        email="kid@acme.io",
        phone_number="+4915123456780",
        age_gated_date_of_birth="2020-01-01",
    )
    assert young.status_code == 400 and "age-gating" in young.text
    adult = subscribe(
        api,
        email="ada@acme.io",
        phone_number="+4915123456789",
        age_gated_date_of_birth="1990-07-04",
    )
    assert adult.status_code == 202 and sms_marketing(app)["consent"] == "SUBSCRIBED"


def test_an_sms_opt_out_or_carrier_block_in_klaviyo_is_recorded_as_klaviyo_does(app):
    app.add_profile("ada@acme.io", "+4915123456789")
    app.unsubscribe_sms("ada@acme.io", blocked=True)
    marketing = sms_marketing(app)
    assert (marketing["consent"], marketing["can_receive_sms_marketing"]) == (
        "UNSUBSCRIBED",
        False,
    )
    assert [e["metric"] for e in app.events()] == ["Unsubscribed from SMS Marketing"]


def test_properties_of_every_json_type_are_stored_as_given(api, app):
    properties = {
        "n": 1.5,
        "i": 250,
        "b": False,
        "a": ["Webinars", "News"],
        "o": {"city": "Moscow", "zip": "109240"},
        "l": [{"sku": "W-1"}],
        "d": "1990-07-04",
    }
    body = profile_body(email="ada@acme.io", properties=properties)
    assert api.call("POST", "/api/profile-import", body).status_code == 201
    assert app.profile_by_email("ada@acme.io")["properties"] == properties
