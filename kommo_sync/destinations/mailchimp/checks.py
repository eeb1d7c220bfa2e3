"""`kommo-sync check` and `init` for Mailchimp: the key, the audience and its room for merge
fields. Every request is a GET."""

from __future__ import annotations

from typing import Any

from kommo_sync.checklist import Check, Failed, Named, count_of, not_found_hint, vendor_failures
from kommo_sync.clock import Clock
from kommo_sync.destinations.mailchimp.api import PAGE, collection, mailchimp_http
from kommo_sync.destinations.mailchimp.config import MailchimpConfig
from kommo_sync.exits import EXIT_CONFIG
from kommo_sync.http import HttpClient

MERGE_FIELD_LIMIT = 30  # merge fields per Mailchimp audience
ALWAYS_MERGED = ("FNAME", "LNAME")  # the names travel whatever mailchimp.merge_fields says
AUDIENCE_FIELDS = "lists.id,lists.web_id,lists.name,lists.stats.member_count,total_items"


def mailchimp_audiences(http: HttpClient) -> list[Named]:
    """Every audience of the account, 1,000 a page."""
    lists = collection(
        lambda path, params: http.get_json(path, params=params),
        "/lists",
        "lists",
        {"fields": AUDIENCE_FIELDS},
    )
    return [_audience(raw) for raw in lists]


def _audience(raw: dict[str, Any]) -> Named:
    subscribed = (raw.get("stats") or {}).get("member_count", 0)
    web_id = raw.get("web_id")
    return Named(
        raw["id"],
        raw.get("name") or "",
        f"{subscribed} subscribed",
        None if web_id is None else str(web_id),
    )


def mailchimp_checks(config: MailchimpConfig, clock: Clock, timeout: float) -> list[Check]:
    http = mailchimp_http(config, clock, timeout)
    try:
        with vendor_failures("mailchimp", "api_key", "audience and merge fields not checked"):
            audiences = mailchimp_audiences(http)
    except Failed as failed:
        return [failed.check]
    accepted = f"Mailchimp accepted the key ({count_of(len(audiences), 'audience')})"
    checks = [Check("mailchimp.api_key", accepted), audience_check(config.list_id, audiences)]
    if checks[-1].ok:
        checks.append(_merge_fields_check(http, config))
    return checks


def _merge_fields_check(http: HttpClient, config: MailchimpConfig) -> Check:
    try:
        with vendor_failures("mailchimp", "api_key", "merge fields not checked"):
            return merge_field_check(config, _merge_field_tags(http, config.list_id))
    except Failed as failed:
        return failed.check


def audience_check(list_id: str, audiences: list[Named]) -> Check:
    found = next((a for a in audiences if a.id == list_id), None)
    if found:
        return Check("mailchimp.list_id", f"audience {found.label()}")
    hint = not_found_hint(list_id, audiences, "audience")
    return Check("mailchimp.list_id", f"no audience {list_id!r}{hint}", EXIT_CONFIG)


def _merge_field_tags(http: HttpClient, list_id: str) -> set[str]:
    body = (
        http.get_json(
            f"/lists/{list_id}/merge-fields",
            params={"count": PAGE, "fields": "merge_fields.tag,total_items"},
        )
        or {}
    )
    return {field["tag"] for field in body.get("merge_fields") or []}


def merge_field_check(config: MailchimpConfig, existing: set[str]) -> Check:
    """The merge fields a run creates must fit in the audience beside those it already has."""
    wanted = {*ALWAYS_MERGED, *config.merge_fields}
    have, missing = sorted(wanted & existing), sorted(wanted - existing)
    total = len(existing) + len(missing)
    if total > MERGE_FIELD_LIMIT:
        return Check(
            "mailchimp.merge_fields",
            f"the audience has {len(existing)} merge fields and the config needs "
            f"{len(missing)} more ({', '.join(missing)}), past Mailchimp's limit of "
            f"{MERGE_FIELD_LIMIT}: delete some in Mailchimp or map fewer in mailchimp.merge_fields",
            EXIT_CONFIG,
        )
    created = f"; the first run creates {', '.join(missing)}" if missing else ""
    return Check(
        "mailchimp.merge_fields",
        f"{', '.join(have) or 'none'} exist{created} "
        f"({total} of Mailchimp's {MERGE_FIELD_LIMIT} merge fields)",
    )
