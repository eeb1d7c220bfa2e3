"""The audience's merge fields: every one a member carries exists before members are written.

Read once, created when missing, then remembered (a later run with the same config asks
nothing). A create is not safe to repeat, so a doubtful one is settled by reading back.
"""

from __future__ import annotations

from typing import Any

from kommo_sync.destinations.mailchimp.api import AudienceApi, already_exists
from kommo_sync.destinations.mailchimp.config import MailchimpConfig
from kommo_sync.errors import ConfigError, FatalError, OutcomeUnknown, RequestRefused
from kommo_sync.memory import DestinationMemory

ALWAYS = ("FNAME", "LNAME")  # the names travel whatever mailchimp.merge_fields says


def ensure_merge_fields(
    api: AudienceApi, config: MailchimpConfig, memory: DestinationMemory, dry_run: bool
) -> None:
    """Create the merge fields the config needs and the audience lacks (a dry run only reads)."""
    wanted = {*ALWAYS, *config.merge_fields}
    if wanted <= set(memory.get("merge_fields", [])):
        return
    missing = sorted(wanted - merge_field_tags(api))
    if dry_run:
        return
    for tag in missing:
        _create_merge_field(api, tag, config)
    memory.set("merge_fields", sorted(wanted))


def merge_field_tags(api: AudienceApi) -> set[str]:
    """The audience's merge tags (at most 30, one page)."""
    body = api.get(f"{api.list_path}/merge-fields", {"count": 1000}) or {}
    return {f["tag"] for f in body.get("merge_fields", [])}


def _create_merge_field(api: AudienceApi, tag: str, config: MailchimpConfig) -> None:
    """An unknown outcome, or "already exists" (made meanwhile), is settled by reading the merge
    fields back; any other refusal is fatal."""
    try:
        api.http.request(
            "POST",
            f"{api.list_path}/merge-fields",
            repeatable=False,
            json=merge_field_body(tag, config),
        )
        return
    except OutcomeUnknown as exc:
        doubt = str(exc)
    except RequestRefused as exc:
        if not already_exists(exc.reason):
            raise ConfigError(
                "mailchimp.merge_fields",
                f"Mailchimp refused to create the merge field {tag} "
                f"({exc.reason}); check the audience's merge fields",
            ) from None
        doubt = exc.reason
    if tag not in merge_field_tags(api):
        raise FatalError(
            f"Mailchimp merge field {tag}: {doubt}, and it is not there; the next run tries again"
        )


def merge_field_body(tag: str, config: MailchimpConfig) -> dict[str, Any]:
    """A text field named after its contact attribute; phones in international format."""
    label = config.merge_fields.get(tag, tag).replace("_", " ").title()
    name = {"FNAME": "First Name", "LNAME": "Last Name"}.get(tag, label)
    body: dict[str, Any] = {"tag": tag, "name": name, "type": "text", "public": False}
    if config.merge_fields.get(tag) == "phone":
        body.update(type="phone", options={"phone_format": "International"})
    return body
