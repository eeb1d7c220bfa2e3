"""The field map and the Kommo tags in a member, pure: each mapped value converted for the merge
field it lands in (`fieldvalues.to_mailchimp`), and the person's Kommo tags under the prefix,
within the cap on distinct managed tags. What is left out is counted, never silently dropped.

Kommo tags reach people the way every mapped value does: the destination declares entries for
the built-in sources `contact.tags` / `lead.tags` (target `KOMMO_TAGS`, never a merge tag), so
the engine's field reader puts them in `Person.values` and planning stays pure.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kommo_sync.destinations.mailchimp.config import KommoTags
from kommo_sync.destinations.mailchimp.operations import KommoTagMove
from kommo_sync.fieldvalues import MergeFieldSpec, Texts, to_mailchimp
from kommo_sync.model import Person

NAME = "mailchimp"
KOMMO_TAGS = "kommo_tags"  # the internal target of the entries that read Kommo tags
SEGMENT_SIZE = 500  # members_to_add / members_to_remove per static-segment call


@dataclass(frozen=True)
class MappedField:
    """One `fields:` entry as planning needs it: the merge tag, the source key people carry the
    value under, and the merge field's spec in the audience (or the one it is created with)."""

    tag: str
    key: str
    spec: MergeFieldSpec


@dataclass
class FieldPlan:
    """Shared by every plan of a run: `admitted` (the Kommo tags this tool manages in the
    audience, remembered across runs) grows up to `kommo_tags.max`; `counts` fill as people are
    planned and are handed to the plan's counters."""

    fields: tuple[MappedField, ...] = ()
    kommo_tags: KommoTags | None = None
    admitted: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)

    def merge_values(self, person: Person) -> dict[str, Any]:
        """Each mapped value under its tag; a clear is ""; a skip leaves the tag out (counted)."""
        values: dict[str, Any] = {}
        for mapped in self.fields:
            value = person.values.get(mapped.key)
            if value is None:  # not read for this person: leave the merge field as it is
                self._count("fields.skipped.not_read")
                continue
            converted = to_mailchimp(value, mapped.spec)
            for note in converted.notes:
                self._count(f"fields.{note}")
            if converted.skip is not None:
                self._count(f"fields.skipped.{slug(converted.skip)}")
                continue
            values[mapped.tag] = "" if converted.cleared else converted.value
        return values

    def tags_of(self, person: Person) -> list[str]:
        """The person's Kommo tags (contact's, and the deciding lead's), prefixed and sorted;
        a name past the cap is not sent (counted)."""
        assert self.kommo_tags is not None
        names: list[str] = []
        for source in self.kommo_tags.sources:
            value = person.values.get(f"{source}.tags")
            if isinstance(value, Texts):
                names += [text.strip() for text in value.texts if text.strip()]
        wanted = sorted({self.kommo_tags.prefix + name for name in names})
        return [name for name in wanted if self._admit(name)]

    def move(
        self, desired: list[str] | None, before: Iterable[str] | None, trusted: bool
    ) -> KommoTagMove | None:
        """The Kommo tags to add and remove. Untrusted (a full resync), any managed tag may be on
        the member: every admitted one it should not carry comes off."""
        if desired is None:
            return None
        known = set(before or ()) if trusted else self.admitted
        add = tuple(name for name in desired if not trusted or name not in known)
        remove = tuple(sorted(known - set(desired)))
        return KommoTagMove(add, remove) if add or remove else None

    def _admit(self, name: str) -> bool:
        assert self.kommo_tags is not None
        if name in self.admitted:
            return True
        if len(self.admitted) < self.kommo_tags.max:
            self.admitted.add(name)
            return True
        self._count("kommo_tags.over_cap")
        return False

    def _count(self, key: str, amount: int = 1) -> None:
        self.counts[f"{NAME}.{key}"] += amount


def slug(reason: str) -> str:
    """A skip reason as a counter name: `not a number` → `not_a_number`."""
    return re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_")


def tag_cost(moves: Iterable[KommoTagMove]) -> Counter[str]:
    """What the Kommo tag moves of one plan cost: tags added and removed, and the static-segment
    calls (or /batches operations) the bulk path makes for them, one per tag and 500 members."""
    adds: Counter[str] = Counter()
    removes: Counter[str] = Counter()
    for move in moves:
        adds.update(move.add)
        removes.update(move.remove)
    calls = sum(
        -(-max(adds[name], removes[name]) // SEGMENT_SIZE) for name in set(adds) | set(removes)
    )
    return Counter(
        {
            f"{NAME}.kommo_tags.added": sum(adds.values()),
            f"{NAME}.kommo_tags.removed": sum(removes.values()),
            f"{NAME}.kommo_tags.segment_calls": calls,
        }
    )
