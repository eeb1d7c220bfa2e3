"""Reconcile for Mailchimp: the audience's members read back and compared with what was pushed.

The read pages the members 1,000 a request with `fields=` cut to what is compared (status,
merge fields, tags), keeping only the members this tool pushed. Archived members are left out
of that listing, so when some pushed member is not in it, one more listing (`status=archived`)
tells "archived by hand" from "missing". A member with more tags than a listing shows (50) has
its tags read on their own. The comparison (`compare`) is pure.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any

from kommo_sync.destinations.base import Drift, DriftFound, DriftKind
from kommo_sync.destinations.mailchimp.api import PAGE, AudienceApi, collection
from kommo_sync.destinations.mailchimp.feedback import _member_feedback
from kommo_sync.destinations.mailchimp.mapping import ABSENT, ARCHIVED, NAME
from kommo_sync.model import Feedback, FeedbackKind
from kommo_sync.plan import STATUS

MEMBER_FIELDS = (
    "members.id,members.email_address,members.status,members.merge_fields,members.tags,"
    "members.tags_count,members.last_changed,members.unsubscribe_reason,total_items"
)
ARCHIVED_FIELDS = "members.id,total_items"
OPTED_OUT = {"unsubscribed": FeedbackKind.UNSUBSCRIBED, "cleaned": FeedbackKind.CLEANED}
NOT_THERE = (ABSENT, ARCHIVED)  # pushed statuses of people expected out of the audience


def reconcile_cost(people: int) -> int:
    """Pages of the members listing for this many people (more when the audience holds people
    this tool does not manage), plus the archived listing's first page."""
    return max(1, -(-people // PAGE)) + 1


def expected(pushed: Mapping[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The pushed records of members that should be in the audience."""
    return {
        pid: record
        for pid, record in pushed.items()
        if record.get("hash") and record.get(STATUS) not in NOT_THERE
    }


def compare(
    pushed: Mapping[int, dict[str, Any]],
    members: Mapping[str, dict[str, Any]],
    archived: Collection[str],
    managed: Collection[str],
    place: str,
) -> DriftFound:
    """Each pushed member against the member read back (by subscriber hash)."""
    found = DriftFound()
    for pid, record in sorted(expected(pushed).items()):
        member = members.get(str(record["hash"]))
        if member is None:
            found.drift.append(gone(pid, record, record["hash"] in archived))
            found.unsubscribes += known_optout(record, place)
            continue
        found.drift += member_drift(pid, record, member, managed)
        optout = opted_out(record, member, place)
        if optout is not None:
            found.unsubscribes.append(optout)
    return found


def gone(pid: int, record: dict[str, Any], archived: bool) -> Drift:
    """A pushed member no longer listed: archived by hand, or not there at all. The record then
    says so, and the plan adds it back as a new person (`status_if_new`: an archived member comes
    back unsubscribed if it was)."""
    if archived:
        return Drift(pid, DriftKind.ARCHIVED, "archived in Mailchimp", status=ARCHIVED)
    return Drift(pid, DriftKind.MISSING, "not in the audience", status=ABSENT)


def known_optout(record: dict[str, Any], place: str) -> list[Feedback]:
    """A member gone that the state knew as unsubscribed or cleaned: its address becomes a
    suppression (the time 0 makes no note), so adding it back never subscribes it."""
    kind = OPTED_OUT.get(str(record.get(STATUS)))
    if kind is None or not record.get("email"):
        return []
    email = str(record["email"]).lower()
    return [Feedback(NAME, kind, email, 0, place, f"{NAME}:{kind}:{record['hash']}:0")]


def member_drift(
    pid: int, record: dict[str, Any], member: dict[str, Any], managed: Collection[str]
) -> list[Drift]:
    """The differences of one member present in the audience."""
    drift: list[Drift] = []
    kind = OPTED_OUT.get(str(member.get("status")))
    if kind is not None and record.get(STATUS) not in OPTED_OUT:
        drift.append(Drift(pid, DriftKind.UNSUBSCRIBED, f"{kind} in Mailchimp"))
    tags = tag_problem(str(record.get("tag") or ""), member_tags(member), managed)
    if tags:
        drift.append(Drift(pid, DriftKind.WRONG_TAG, tags))
    fields = wrong_fields(record.get("merge_fields") or {}, member.get("merge_fields") or {})
    if fields:
        drift.append(Drift(pid, DriftKind.WRONG_FIELD, ", ".join(fields)))
    return drift


def opted_out(record: dict[str, Any], member: dict[str, Any], place: str) -> Feedback | None:
    """An unsubscribe or clean the state does not know of, as the feedback read reports it."""
    kind = OPTED_OUT.get(str(member.get("status")))
    if kind is None or record.get(STATUS) in OPTED_OUT:
        return None
    return _member_feedback(member, kind, place)


def member_tags(member: dict[str, Any]) -> set[str]:
    return {str(tag.get("name")) for tag in member.get("tags") or []}


def tag_problem(stage_tag: str, tags: set[str], managed: Collection[str]) -> str:
    """What is wrong with the member's managed tags ("" when nothing): the stage tag missing,
    or another managed tag on it (a marketer's own tags are no concern)."""
    problems = [f"missing {stage_tag}"] if stage_tag and stage_tag not in tags else []
    extra = sorted(tag for tag in tags & set(managed) if tag != stage_tag)
    problems += [f"extra {tag}" for tag in extra]
    return "; ".join(problems)


def wrong_fields(pushed: Mapping[str, Any], held: Mapping[str, Any]) -> list[str]:
    """Merge fields whose value differs from the one pushed (text as Mailchimp holds it)."""
    return sorted(tag for tag, value in pushed.items() if not same(value, held.get(tag)))


def same(pushed: Any, held: Any) -> bool:
    """Equal as Mailchimp stores them: text trimmed, null as "", numbers by value."""
    left, right = _text(pushed), _text(held)
    if left == right:
        return True
    try:
        return float(left) == float(right)
    except ValueError:
        return False


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


# the read ----------------------------------------------------------------------------------------
class MemberReader:
    """The paged reads of one reconcile, counting every request they make."""

    def __init__(self, api: AudienceApi):
        self.api, self.requests = api, 0
        self.members_path = f"{api.list_path}/members"

    def get(self, path: str, params: dict[str, Any]) -> Any:
        self.requests += 1
        return self.api.get(path, params)

    def listing(self, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        return collection(self.get, self.members_path, "members", params)

    def members(self, hashes: Collection[str]) -> dict[str, dict[str, Any]]:
        """The listed (not archived) members among `hashes`, with all their tags."""
        kept = {
            str(m["id"]): m for m in self.listing({"fields": MEMBER_FIELDS}) if m["id"] in hashes
        }
        for member in kept.values():
            if int(member.get("tags_count") or 0) > len(member.get("tags") or []):
                member["tags"] = list(self.all_tags(str(member["id"])))
        return kept

    def archived(self, hashes: Collection[str]) -> set[str]:
        """Which of `hashes` are archived members (none asked for when `hashes` is empty)."""
        if not hashes:
            return set()
        listing = self.listing({"status": "archived", "fields": ARCHIVED_FIELDS})
        return {str(m["id"]) for m in listing if m["id"] in hashes}

    def all_tags(self, member_hash: str) -> Iterable[dict[str, Any]]:
        path = f"{self.api.member_path(member_hash)}/tags"
        return collection(self.get, path, "tags", {})


def read_drift(
    api: AudienceApi,
    pushed: Mapping[int, dict[str, Any]],
    managed: Collection[str],
    list_name: Callable[[], str],
) -> DriftFound:
    """Read the members this tool pushed and compare them with what it pushed; the audience's
    name (for notes) is asked only when someone opted out."""
    reader = MemberReader(api)
    hashes = {str(record["hash"]) for record in expected(pushed).values()}
    members = reader.members(hashes)
    archived = reader.archived(hashes - set(members))
    opted = any(OPTED_OUT.get(str(m.get("status"))) for m in members.values())
    place = f"Mailchimp list '{list_name()}'" if opted else ""
    found = compare(pushed, members, archived, managed, place)
    found.requests = reader.requests
    return found
