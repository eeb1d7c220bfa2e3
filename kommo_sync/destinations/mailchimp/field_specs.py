"""The audience's merge fields for the field map (`mailchimp.fields`), once a run before planning.

Each entry's merge tag is used as the audience has it when its type can hold the Kommo field's
values (a dropdown or radio first gets the Kommo choices it lacks), else created with the type
that fits (`fieldvalues.mailchimp_merge_type`). The specs found or made are remembered with the
Kommo field they were checked for, so a later run with the same config and the same Kommo
choices asks nothing. The merge-field limit is the audience's: this module knows no number, it
reports the audience's count and what the config asks for when Mailchimp refuses a create.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from kommo_sync.destinations.mailchimp.api import AudienceApi, already_exists
from kommo_sync.errors import ConfigError, FatalError, OutcomeUnknown, RequestRefused
from kommo_sync.fieldmap import Resolved
from kommo_sync.fieldvalues import (
    KommoField,
    MergeFieldSpec,
    mailchimp_can_hold,
    mailchimp_merge_type,
    missing_choices,
)
from kommo_sync.memory import DestinationMemory

MEMORY_KEY = "field_specs"
Audience = dict[str, dict[str, Any]]  # merge tag → the merge field as Mailchimp lists it


def ensure_field_specs(
    api: AudienceApi, resolved: tuple[Resolved, ...], memory: DestinationMemory, dry_run: bool
) -> dict[str, MergeFieldSpec]:
    """The spec of each entry's merge field by tag: remembered, found, adapted or created (a
    dry run only reads, and plans with the spec a create would give)."""
    if not resolved:
        return {}
    remembered = memory.get(MEMORY_KEY) or {}
    if all(_still(remembered, r) for r in resolved):
        return {r.entry.target: spec_of(remembered[r.entry.target]["spec"]) for r in resolved}
    audience, total = read_merge_fields(api)
    specs = {
        r.entry.target: _existing(api, r, audience[r.entry.target], dry_run)
        for r in resolved
        if r.entry.target in audience
    }
    missing = [r for r in resolved if r.entry.target not in audience]
    for entry in missing:
        wanted = mailchimp_merge_type(entry.kommo_field)
        specs[entry.entry.target] = (
            wanted if dry_run else _create(api, entry, wanted, total, missing)
        )
    if not dry_run:
        memory.set(MEMORY_KEY, {r.entry.target: _memo(r, specs[r.entry.target]) for r in resolved})
    return specs


def read_merge_fields(api: AudienceApi) -> tuple[Audience, int]:
    """The audience's merge fields by tag, and how many it has (Mailchimp's total)."""
    body = api.get(f"{api.list_path}/merge-fields", {"count": 1000}) or {}
    fields = {str(f["tag"]): f for f in body.get("merge_fields") or []}
    return fields, int(body.get("total_items") or len(fields))


def spec_of(data: dict[str, Any]) -> MergeFieldSpec:
    """A spec from a merge field (`options` as Mailchimp nests them) or from the memory."""
    options = data.get("options") or data
    return MergeFieldSpec(
        str(data.get("type") or "text"),
        date_format=options.get("date_format") or None,
        choices=tuple(options.get("choices") or ()),
        phone_format=options.get("phone_format") or None,
    )


def _signature(field: KommoField) -> list[Any]:
    """What a remembered check depends on: the Kommo type and choices (a new choice re-checks)."""
    return [field.type, list(field.choices)]


def _still(remembered: dict[str, Any], resolved: Resolved) -> bool:
    memo = remembered.get(resolved.entry.target)
    return memo is not None and memo.get("kommo") == _signature(resolved.kommo_field)


def _memo(resolved: Resolved, spec: MergeFieldSpec) -> dict[str, Any]:
    return {"kommo": _signature(resolved.kommo_field), "spec": asdict(spec)}


def _existing(
    api: AudienceApi, resolved: Resolved, merge_field: dict[str, Any], dry_run: bool
) -> MergeFieldSpec:
    """An existing merge field of the entry's tag: used as it is when it can hold the values, a
    dropdown or radio after its missing Kommo choices are added; else a config error."""
    spec, field = spec_of(merge_field), resolved.kommo_field
    if spec.type == mailchimp_merge_type(field).type and spec.type not in {"dropdown", "radio"}:
        return spec
    added = missing_choices(spec, field)
    if added:
        spec = MergeFieldSpec(spec.type, spec.date_format, (*spec.choices, *added))
    if not mailchimp_can_hold(spec, field):
        raise ConfigError(
            f"{resolved.entry.where}.to",
            f"the audience's merge field {resolved.entry.target} is of type {spec.type}, which "
            f"cannot hold the Kommo {field.type} field {field.name!r} (it needs "
            f"{mailchimp_merge_type(field).type}); map it to another tag",
        )
    if added and not dry_run:
        _add_choices(api, merge_field, spec.choices)
    return spec


def _add_choices(api: AudienceApi, merge_field: dict[str, Any], choices: tuple[str, ...]) -> None:
    """PATCH the merge field's choices (the whole list: Mailchimp replaces it). Setting a list is
    safe to repeat, so the HTTP layer's retries apply."""
    try:
        api.http.request(
            "PATCH",
            f"{api.list_path}/merge-fields/{merge_field['merge_id']}",
            json={
                "name": merge_field.get("name") or merge_field["tag"],
                "options": {"choices": list(choices)},
            },
        )
    except RequestRefused as exc:
        raise ConfigError(
            "mailchimp.fields",
            f"Mailchimp refused to add choices to the merge field {merge_field['tag']} "
            f"({exc.reason}); add them in the audience's settings",
        ) from None


def create_body(tag: str, field: KommoField, spec: MergeFieldSpec) -> dict[str, Any]:
    """A hidden merge field named after the Kommo field, with the options its type takes."""
    options: dict[str, Any] = {}
    if spec.date_format:
        options["date_format"] = spec.date_format
    if spec.choices:
        options["choices"] = list(spec.choices)
    if spec.phone_format:
        options["phone_format"] = spec.phone_format
    body: dict[str, Any] = {"tag": tag, "name": field.name or tag, "type": spec.type}
    body["public"] = False
    return {**body, "options": options} if options else body


def _create(
    api: AudienceApi,
    resolved: Resolved,
    spec: MergeFieldSpec,
    total: int,
    missing: list[Resolved],
) -> MergeFieldSpec:
    """A create is not safe to repeat: an unknown outcome (or "already exists") is settled by
    reading back; any other refusal (the audience's limit, most often) is a config error that
    says how many merge fields the audience has and how many more the config asks for."""
    tag = resolved.entry.target
    try:
        api.http.request(
            "POST",
            f"{api.list_path}/merge-fields",
            repeatable=False,
            json=create_body(tag, resolved.kommo_field, spec),
        )
        return spec
    except OutcomeUnknown as exc:
        doubt = str(exc)
    except RequestRefused as exc:
        if not already_exists(exc.reason):
            raise ConfigError(
                f"{resolved.entry.where}.to",
                f"Mailchimp refused to create the merge field {tag} ({exc.reason}): the "
                f"audience has {total} merge fields and mailchimp.fields asks for "
                f"{len(missing)} more",
            ) from None
        doubt = exc.reason
    audience, _ = read_merge_fields(api)
    if tag not in audience:
        raise FatalError(
            f"Mailchimp merge field {tag}: {doubt}, and it is not there; the next run tries again"
        )
    return _existing(api, resolved, audience[tag], dry_run=False)
