"""The `live` mode: a tiny real sync of one address to Mailchimp, recorded as scrubbed cassettes.

    MAILCHIMP_LIVE_API_KEY=…-us6 MAILCHIMP_LIVE_LIST_ID=… MAILCHIMP_LIVE_EMAIL=you@your.domain \\
        .venv/bin/pytest -m live tests/test_mailchimp_live.py

Skipped unless the key and the audience id are set. MAILCHIMP_LIVE_EMAIL must be an address you
own: it lands in that audience as `transactional` (no marketing) with a "kommo-sync live" tag.
Cassettes go to MAILCHIMP_LIVE_CASSETTE_DIR or a temp dir; the authorization header, the key and
personal data (emails, their hashes, names, merge values) are scrubbed before anything is written.
The same recording path is rehearsed against the local sandbox on every (non-live) run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import vcr
import yaml
from vcr.request import Request

from kommo_sync.clock import Clock
from kommo_sync.destinations.mailchimp import MailchimpDestination, mailchimp_http
from kommo_sync.destinations.mailchimp.config import MailchimpConfig
from kommo_sync.http import HttpClient
from kommo_sync.model import Person, Stage
from kommo_sync.plan import Outcome
from kommo_sync.sandbox.mailchimp import MailchimpSandbox
from kommo_sync.sandbox.server import SandboxServer
from tests.contract.test_mailchimp_cassettes import Memory

LIVE_ENV = ("MAILCHIMP_LIVE_API_KEY", "MAILCHIMP_LIVE_LIST_ID")
CASSETTE = "mailchimp_live_sync.yaml"
REDACTED = "REDACTED"
PERSONAL_KEYS = frozenset(
    {"full_name", "ip_signup", "ip_opt", "unique_email_id", "contact_id", "web_id"}
)
EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
LIVE_TAGS = {
    Stage.NEW: "kommo-sync live",
    Stage.IN_PROGRESS: "kommo-sync live: in progress",
    Stage.WON: "kommo-sync live: won",
    Stage.LOST: "kommo-sync live: lost",
}


def _md5(email: str) -> str:
    return hashlib.md5(email.strip().lower().encode("utf-8")).hexdigest()


class Scrubber:
    """vcrpy record hooks: no key, no authorization header, no emails, hashes, names or merge
    values.

    Emails become person<N>@example.invalid (their subscriber hashes follow, so paths stay
    consistent); bodies that are not text (the batch archive) cannot be vetted and are dropped.
    """

    def __init__(self, secrets: Iterable[str], emails: Iterable[str] = ()):
        self.secrets = [secret for secret in secrets if secret]
        self.aliases: dict[str, str] = {}
        for email in emails:
            self.alias(email)

    def alias(self, email: str) -> str:
        real = email.strip().lower()
        if real.endswith("@example.invalid"):
            return real
        return self.aliases.setdefault(real, f"person{len(self.aliases) + 1}@example.invalid")

    def request(self, request: Request) -> Request:
        request.body = self.body(request.body)
        request.headers = {
            name: self.text(value)
            for name, value in request.headers.items()
            if name.lower() != "authorization"
        }
        request.uri = self.text(request.uri)
        return request

    def response(self, response: dict[str, Any]) -> dict[str, Any]:
        response["body"]["string"] = self.body(response["body"]["string"]) or b""
        response["headers"] = {
            name: [self.text(value) for value in values]
            for name, values in response["headers"].items()
        }
        return response

    def body(self, raw: bytes | str | None) -> bytes | None:
        if raw is None:
            return None
        if not raw:
            return b""
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            return b""
        return self.text(self._json(text)).encode("utf-8")

    def text(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        text = EMAIL.sub(lambda match: self.alias(match.group(0)), text)
        for real, alias in self.aliases.items():
            text = text.replace(_md5(real), _md5(alias))
        return text

    def _json(self, text: str) -> str:
        try:
            data = json.loads(text)
        except ValueError:
            return text
        return json.dumps(self._redact(data))

    def _redact(self, value: Any, parent: str = "") -> Any:
        """Names and merge values out; /batches bodies and results are JSON inside strings."""
        if isinstance(value, dict):
            return {
                key: REDACTED
                if key in PERSONAL_KEYS or parent == "merge_fields"
                else self._redact(item, key)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self._redact(item) for item in value]
        if isinstance(value, str) and value[:1] in ("{", "["):
            return self._json(value)
        return value


def key_secrets(api_key: str) -> list[str]:
    """The key, its part before the data centre, and the Basic token our client sends."""
    token = base64.b64encode(f"kommo-sync:{api_key}".encode()).decode()
    return [api_key, api_key.rsplit("-", 1)[0], token]


def live_config(api_key: str, list_id: str, base_url: str | None = None) -> MailchimpConfig:
    """Only FNAME/LNAME (present in every new audience): the live run creates no merge field."""
    base_url = base_url or f"https://{api_key.rsplit('-', 1)[1]}.api.mailchimp.com/3.0"
    return MailchimpConfig(
        api_key=api_key,
        list_id=list_id,
        base_url=base_url,
        without_consent="transactional",
        merge_fields={},
    )


def sync_one_address(
    config: MailchimpConfig, person: Person, cassette_dir: Path, clock: Clock
) -> list[Outcome]:
    """Prepare, plan and push one person through the real destination, recording scrubbed
    cassettes."""
    scrubber = Scrubber(key_secrets(config.api_key), [person.email or ""])
    recorder = vcr.VCR(
        cassette_library_dir=str(cassette_dir),
        record_mode="new_episodes",
        match_on=["method", "scheme", "host", "path", "query"],
        filter_headers=["authorization"],
        before_record_request=scrubber.request,
        before_record_response=scrubber.response,
        decode_compressed_response=True,
    )
    archive = HttpClient(base_url="", vendor="Mailchimp batch archive", clock=clock)
    destination = MailchimpDestination(
        config, LIVE_TAGS, mailchimp_http(config, clock), archive, clock
    )
    with recorder.use_cassette(CASSETTE):
        destination.prepare(Memory(), dry_run=False)
        return destination.push(destination.plan([person], {}, set()).changes)


def live_person(email: str, first: str = "Kommo-sync", last: str = "Live test") -> Person:
    """Someone without consent: `transactional` in the audience, never marketed to."""
    return Person(1, email, first, last, None, None, None, False, Stage.NEW)


def assert_scrubbed(path: Path, secrets: Iterable[str]) -> None:
    text = path.read_text()
    assert "authorization" not in text.lower() and "basic " not in text.lower()
    for secret in secrets:
        assert secret.lower() not in text.lower(), "a secret or personal value was recorded"
    for interaction in yaml.safe_load(text)["interactions"]:
        assert "authorization" not in {name.lower() for name in interaction["request"]["headers"]}


@pytest.mark.live
@pytest.mark.skipif(
    not all(os.environ.get(name) for name in LIVE_ENV),
    reason="set MAILCHIMP_LIVE_API_KEY and MAILCHIMP_LIVE_LIST_ID to run against Mailchimp",
)
def test_live_sync_of_one_address_records_scrubbed_cassettes(tmp_path):
    email = os.environ.get("MAILCHIMP_LIVE_EMAIL") or pytest.skip(
        "set MAILCHIMP_LIVE_EMAIL to an address you own"
    )
    api_key = os.environ["MAILCHIMP_LIVE_API_KEY"]
    cassette_dir = Path(os.environ.get("MAILCHIMP_LIVE_CASSETTE_DIR") or tmp_path)
    outcomes = sync_one_address(
        live_config(api_key, os.environ["MAILCHIMP_LIVE_LIST_ID"]),
        live_person(email),
        cassette_dir,
        Clock(),
    )
    assert [(o.kind, o.reason) for o in outcomes] == [("done", "")]
    assert_scrubbed(cassette_dir / CASSETTE, [*key_secrets(api_key), email.strip(), _md5(email)])


# not live: the scrubbing, on a sample interaction and through vcrpy against the sandbox -----------
def test_the_scrubbing_hooks_remove_the_key_the_auth_header_and_personal_data():
    api_key, email = "0123456789abcdef0123456789abcdef-us6", "Ada.Lovelace@Analytical.io"
    scrubber = Scrubber(key_secrets(api_key), [email])
    body = {
        "operations": [
            {
                "method": "PUT",
                "path": f"/lists/x/members/{_md5(email)}",
                "operation_id": "7",
                "body": json.dumps({"email_address": email, "merge_fields": {"LNAME": "Lovelace"}}),
            }
        ]
    }
    request = scrubber.request(
        Request(
            "POST",
            f"https://us6.api.mailchimp.com/3.0/batches?echo={api_key}",
            json.dumps(body),
            {"Authorization": f"Basic {key_secrets(api_key)[2]}"},
        )
    )
    member = {
        "id": _md5(email),
        "email_address": email.lower(),
        "full_name": "Ada Lovelace",
        "merge_fields": {"FNAME": "Ada", "LNAME": "Lovelace"},
        "status": "transactional",
    }
    response = scrubber.response(
        {
            "status": {"code": 200, "message": "OK"},
            "headers": {"X-Echo": [email]},
            "body": {"string": json.dumps(member).encode()},
        }
    )
    recorded = json.dumps(
        [
            request.uri,
            dict(request.headers),
            request.body.decode(),
            response["headers"],
            response["body"]["string"].decode(),
        ]
    )
    for gone in (
        api_key,
        "0123456789abcdef0123456789abcdef",
        "Basic",
        email.lower(),
        _md5(email),
        "Lovelace",
    ):
        assert gone.lower() not in recorded.lower()
    assert _md5("person1@example.invalid") in recorded and "person1@example.invalid" in recorded
    assert json.loads(response["body"]["string"])["status"] == "transactional"  # the facts stay
    archive = scrubber.response(
        {"status": {"code": 200}, "headers": {}, "body": {"string": b"\x1f\x8b\x08\xff"}}
    )
    assert archive["body"]["string"] == b""


def test_the_recording_path_rehearsed_against_the_sandbox_leaves_no_secret(tmp_path, clock):
    api_key, email = "fedcba9876543210fedcba9876543210-us6", "Ada.Lovelace@Analytical.io"
    sandbox = MailchimpSandbox(clock, api_key=api_key)
    list_id = sandbox.add_list("Live rehearsal")
    with SandboxServer(sandbox) as server:
        config = live_config(api_key, list_id, base_url=server.url + "/3.0")
        outcomes = sync_one_address(config, live_person(email, "Ada", "Lovelace"), tmp_path, clock)
    assert [o.kind for o in outcomes] == ["done"]
    assert sandbox.member(list_id, email)["status"] == "transactional"
    assert sandbox.member_tags(list_id, email) == {"kommo-sync live"}
    assert_scrubbed(tmp_path / CASSETTE, [*key_secrets(api_key), email, _md5(email), "Lovelace"])
    recorded = yaml.safe_load((tmp_path / CASSETTE).read_text())["interactions"]
    assert [i["request"]["method"] for i in recorded] == ["GET", "PUT", "POST"]
