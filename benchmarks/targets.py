"""The issue's targets, judged on one run's figures: each a line of text and met / missed / n/a
(n/a where a target does not apply to this size or network; the figure is still shown)."""

from __future__ import annotations

from dataclasses import dataclass

from baseline import Baseline
from figures import FEEDBACK_KINDS, Figures

FIRST_SYNC_SIZES = (3_000, 10_000, 100_000)
FLOOR_SLACK = 1.05
PUSH_FIXED, PUSH_PER_THOUSAND = 8, 4
INCREMENTAL_SLACK = 2.0
UNCHANGED_WALL = 3.0
CPU_SHARE, CPU_AT = 0.20, 100_000
RSS_MB, RSS_AT, RSS_NETWORK = 200, 100_000, "slow"
PER_RECORD_REQUESTS = 5  # the design's Mailchimp + Klaviyo requests per changed contact


@dataclass(frozen=True)
class Verdict:
    text: str
    ok: bool | None


def judged(text: str, ok: bool, applies: bool = True) -> Verdict:
    return Verdict(text if applies else f"{text} (judged at other sizes)", ok if applies else None)


def targets(figures: Figures, network: str, baseline: Baseline | None) -> list[Verdict]:
    if figures.kind == "first":
        return first_sync(figures, network)
    if figures.kind == "incremental":
        return incremental(figures, baseline)
    if figures.kind == "unchanged":
        return unchanged(figures)
    return []


def first_sync(figures: Figures, network: str) -> list[Verdict]:
    cost, size = figures.cost, figures.size
    bound = FLOOR_SLACK * figures.floor + figures.job_round_seconds
    share = cost.cpu / cost.wall if cost.wall else 0.0
    return [
        judged(
            f"wall {cost.wall:.1f} s <= {FLOOR_SLACK} x paced floor + one job round "
            f"= {bound:.1f} s",
            cost.wall <= bound,
            size in FIRST_SYNC_SIZES,
        ),
        judged(
            f"CPU (local work) {100 * share:.0f} % of wall <= {100 * CPU_SHARE:.0f} %",
            share <= CPU_SHARE,
            size >= CPU_AT,
        ),
        judged(
            f"peak RSS {cost.peak_rss_mb:.0f} MB <= {RSS_MB} MB (100k on {RSS_NETWORK})",
            cost.peak_rss_mb <= RSS_MB,
            size >= RSS_AT and network == RSS_NETWORK,
        ),
    ]


def incremental(figures: Figures, baseline: Baseline | None) -> list[Verdict]:
    changed, pushing = figures.size, figures.pushing
    allowed = PUSH_FIXED + PUSH_PER_THOUSAND * changed / 1000
    per_record, source = per_record_requests(baseline, changed)
    bound = figures.floor + figures.job_round_seconds + INCREMENTAL_SLACK
    return [
        judged(
            f"pushing requests {pushing:,} <= {PUSH_FIXED} + {PUSH_PER_THOUSAND} per 1,000 "
            f"changed = {allowed:.1f}",
            pushing <= allowed,
        ),
        judged(
            f"pushing requests {pushing:,} < the per-record design's {per_record:,} ({source})",
            pushing < per_record,
            changed >= 10,
        ),
        judged(
            f"wall {figures.cost.wall:.1f} s <= paced floor + one job round + "
            f"{INCREMENTAL_SLACK:g} s = {bound:.1f} s",
            figures.cost.wall <= bound,
        ),
    ]


def per_record_requests(baseline: Baseline | None, changed: int) -> tuple[int, str]:
    """The baseline's Mailchimp + Klaviyo requests for `changed` records, or the design's."""
    row = baseline.row("incremental", changed) if baseline else None
    if row is None:
        return PER_RECORD_REQUESTS * changed, f"{PER_RECORD_REQUESTS} per change, by design"
    return row.destination, "measured" if row.measured else "extrapolated"


def unchanged(figures: Figures) -> list[Verdict]:
    writes, feedback = figures.destination_writes, figures.feedback
    reads = ", ".join(f"{kind} {feedback[kind]}" for kind in FEEDBACK_KINDS)
    return [
        judged(f"destination writes {writes} = 0", writes == 0),
        judged(
            f"one read per feedback kind ({reads}; activity excluded)",
            all(feedback[kind] == 1 for kind in FEEDBACK_KINDS),
        ),
        judged(
            f"wall {figures.cost.wall:.1f} s <= {UNCHANGED_WALL:g} s",
            figures.cost.wall <= UNCHANGED_WALL,
        ),
    ]
