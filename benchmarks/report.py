"""Printing: every figure of a run, its targets with pass/fail beside them, and the side-by-side
comparison with the per-record baseline."""

from __future__ import annotations

from collections import Counter

from baseline import Baseline, Row
from figures import DESTINATION_APIS, FEEDBACK_KINDS, Figures, endpoint
from stack import APIS
from targets import Verdict, targets

KOMMO_ROWS = (
    "pipelines",
    "custom fields",
    "leads",
    "contacts",
    "contacts by id",
    "companies",
    "events",
    "other",
)


def print_run(figures: Figures, network: str, baseline: Baseline | None) -> None:
    """Every figure of one run, then its targets."""
    print(f"\n== {figures.label}   [network {network}]", flush=True)
    print_time(figures)
    print_traffic(figures)
    print_kommo(figures)
    print_cost(figures)
    if figures.counts:
        print_counts(figures.counts)
    verdicts = targets(figures, network, baseline)
    if verdicts:
        print_verdicts(verdicts)


def print_time(figures: Figures) -> None:
    cost, job = figures.cost, figures.job_round
    print(
        f"wall {cost.wall:.1f} s   paced floor {figures.floor:.1f} s "
        f"({figures.minimum:,} Kommo requests at least / {figures.pace:g} req/s)   "
        f"wall/floor {cost.wall / figures.floor:.2f}"
    )
    round_text = f"{job.seconds:.1f} s ({job.kind}, {job.size:,})" if job else "0 s (no job)"
    print(
        f"Kommo busy share {100 * figures.kommo_busy_share:.0f} %   "
        f"tail after the last page {figures.tail:.1f} s   one job round {round_text}"
    )


def print_traffic(figures: Figures) -> None:
    print(f"requests per vendor{'reads':>9}{'writes':>8}{'total':>8}{'429s':>7}")
    for api in APIS:
        t = figures.traffic[api]
        print(f"  {api:<17}{t.reads:>9,}{t.writes:>8,}{t.total:>8,}{t.refused:>7,}")
    for api in DESTINATION_APIS:
        counter = Counter(map(endpoint, figures.stamps[api]))
        if counter:
            shown = ", ".join(f"{name} {n:,}" for name, n in counter.most_common())
            print(f"  {api} by endpoint: {shown}")
    feedback = figures.feedback
    kinds = ", ".join(f"{kind} {feedback[kind]}" for kind in (*FEEDBACK_KINDS, "activity"))
    per_k = figures.per_thousand(figures.pushing)
    print(
        f"feedback reads (apart): {kinds};  pushing requests (Mailchimp + Klaviyo) "
        f"{figures.pushing:,}" + (f" = {per_k:.1f} per 1,000 changed" if per_k else "")
    )


def print_kommo(figures: Figures) -> None:
    sent, minimum = figures.kommo_sent, figures.kommo_minimum
    rows = [row for row in KOMMO_ROWS if sent[row] or minimum.get(row)]
    print("  kommo endpoint: " + ", ".join(f"{r} {sent[r]:,}/{minimum.get(r, 0):,}" for r in rows))
    if figures.items:
        print("  items pulled: " + ", ".join(f"{k} {v:,}" for k, v in figures.items.items()))
    total = len(figures.stamps["kommo"])
    print(
        f"  Kommo requests {total:,} (sent/minimum above) = {total / figures.minimum:.2f}x minimum"
    )


def print_cost(figures: Figures) -> None:
    cost = figures.cost
    share = 100 * cost.cpu / cost.wall if cost.wall else 0.0
    print(
        f"CPU {cost.cpu:.1f} s = {share:.0f} % of wall (run thread {cost.thread_cpu:.1f} s; "
        f"the sandboxes apart)   peak RSS {cost.peak_rss_mb:.0f} MB "
        f"(at start {cost.rss_start_mb:.0f} MB)"
    )


def print_counts(counts: Counter[str]) -> None:
    pushed = {k: v for k, v in sorted(counts.items()) if k.split(".")[0] in DESTINATION_APIS}
    print(
        f"changed people {counts['people']:,} (contacts {counts['changed_contacts']:,}, "
        f"leads {counts['changed_leads']:,}), rejected {counts['rejected']:,};  "
        + (", ".join(f"{k} {v:,}" for k, v in pushed.items()) or "nothing pushed")
    )


def print_verdicts(verdicts: list[Verdict]) -> None:
    print("targets:")
    for verdict in verdicts:
        mark = {True: "met", False: "MISSED", None: "n/a"}[verdict.ok]
        print(f"  [{mark:^6}] {verdict.text}")


def print_comparison(runs: list[Figures], baseline: Baseline) -> None:
    """Ours next to the baseline, run by run; * marks the baseline's extrapolated figures."""
    print("\n== side by side: kommo-sync vs the per-record baseline (* = extrapolated)")
    print(
        f"{'run':<40}{'wall ours':>10}{'base':>10}{'ratio':>8}"
        f"{'dest. req. ours':>17}{'base':>9}{'ratio':>8}{'Kommo ours':>12}{'base':>8}{'ratio':>8}"
    )
    for figures in runs:
        row = baseline.row(figures.kind, figures.size)
        if row is not None and figures.kind != "unchanged":
            print_comparison_row(figures, row)


def print_comparison_row(figures: Figures, row: Row) -> None:
    star = "" if row.measured else "*"
    ours_kommo = len(figures.stamps["kommo"])
    print(
        f"{figures.label[:39]:<40}{figures.cost.wall:>9.1f}s{row.wall:>8.1f}s{star:1}"
        f"{ratio(row.wall, figures.cost.wall):>8}"
        f"{figures.destination_requests:>17,}{row.destination:>8,}{star:1}"
        f"{ratio(row.destination, figures.destination_requests):>8}"
        f"{ours_kommo:>12,}{row.kommo:>7,}{star:1}{ratio(row.kommo, ours_kommo):>8}"
    )


def ratio(base: float, ours: float) -> str:
    """How many times the baseline's figure is ours (below 1: the baseline does better)."""
    return f"{base / ours:.1f}x" if ours else "-"
