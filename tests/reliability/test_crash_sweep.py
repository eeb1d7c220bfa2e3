"""Issue 10, the crash sweep: `kommo-sync run` as a subprocess, SIGKILLed when a chosen request
reaches a sandbox (after a vendor applied a write, so its answer dies with the process; before
Kommo serves a page). Then cron goes on: runs until one exits 0 and writes nothing. The world
must then equal a clean run's, with no event stored twice, no note written twice and no note
about an unsubscribe we made ourselves.

Each kill point is its own test, in the phase where its request occurs: a first sync (40 people,
some already in the vendors' lists), a small incremental run (changes go one by one), or a first
or incremental sync of 510 people (three Kommo contact pages of 250). Every write is killed both
after the vendor applied it and before it reached the vendor (what the run marked as under way,
pending events, notes being sent, our own unsubscribes noted, must be settled by the next runs).

Speed: the killed runs are real processes on real time (pacing, job polls), so two of them run
side by side on a small pool, ahead of the tests that check them; the runs after the kill are
in-process on a clock that never waits. An incremental case starts from a snapshot of a settled
first sync instead of syncing again.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import World
from tests.reliability.harness import (
    PAGES,
    PHASES,
    WRITES,
    Base,
    Point,
    build_base,
    check,
    differences,
    duplicates,
    end_state,
    prepare,
    real_time_world,
    reference,
    run_killed,
    settle,
)

SIDE_BY_SIDE = 2

KILLS = [*(replace(p, kind=kind) for p in WRITES for kind in ("kill_after", "kill_before")), *PAGES]
XFAIL: dict[
    str, str
] = {}  # kill point id -> the bug it still hits (none left at the time of writing)


def _id(point: Point) -> str:
    return f"{point.id}:{point.kind.removeprefix('kill_')}"


def _param(point: Point) -> Any:
    marks = (
        [pytest.mark.xfail(strict=True, reason=XFAIL[_id(point)])] if _id(point) in XFAIL else []
    )
    return pytest.param(point, id=_id(point), marks=marks)


@dataclass
class Killed:
    world: World
    code: int
    output: str


def _kill(point: Point, base: Base, tmp: Path) -> Killed:
    world = real_time_world(tmp)
    try:
        prepare(world, PHASES[point.phase], base.snap)
        code = run_killed(world, point.sandbox(world), point.fault(), tmp / "child.log")
        world.clock.advance(60)  # cron's next run comes later: a later second, at least
    except BaseException:
        world.close()
        raise
    return Killed(world, code, (tmp / "child.log").read_text(errors="replace")[-3000:])


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Base]:
    """Per seed size, a clean real-time world: the references, and the settled first sync the
    incremental cases start from."""
    return {
        n: build_base(tmp_path_factory.mktemp(f"base-{n}"), PHASES[name])
        for n, name in ((40, "incremental"), (510, "pages-incremental"))
    }


@pytest.fixture(scope="module")
def killed(
    bases: dict[int, Base], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[Point], Killed]]:
    """Every kill point's world after its killed run, produced ahead of the tests, two at a time."""
    pool = ThreadPoolExecutor(SIDE_BY_SIDE, thread_name_prefix="killed-run")
    futures: dict[str, Future[Killed]] = {}
    for point in KILLS:
        tmp = tmp_path_factory.mktemp("kill")
        futures[_id(point)] = pool.submit(_kill, point, bases[PHASES[point.phase].n], tmp)

    def get(point: Point) -> Killed:
        return futures.pop(_id(point)).result()

    yield get
    pool.shutdown(cancel_futures=True)
    for future in futures.values():
        if not future.cancelled() and future.exception() is None:
            future.result().world.close()


@pytest.mark.parametrize("point", [_param(p) for p in KILLS])
def test_a_run_killed_at_any_write_or_page_is_finished_by_the_next_runs_exactly_once(
    point: Point, bases: dict[int, Base], killed: Callable[[Point], Killed]
) -> None:
    phase = PHASES[point.phase]
    base = bases[phase.n]
    case = killed(point)
    try:
        assert case.code == -signal.SIGKILL, (
            f"the kill point never came (exit {case.code}):\n{case.output}"
        )
        codes = settle(case.world)
        assert codes[-1] == 0, f"runs after the kill exit {codes}"
        problems = check(base.incremental if phase.incremental else base.first, case.world)
        assert not problems, "\n".join(problems)
    finally:
        case.world.close()


# the harness itself ------------------------------------------------------------------------------
def test_a_clean_run_ends_alike_in_real_and_in_simulated_time(
    bases: dict[int, Base], tmp_path: Path
) -> None:
    """Kill cases compare with a real-time reference, lost answers with a simulated one: both
    agree, so nothing in the end state depends on the clock."""
    assert differences(reference(tmp_path, PHASES["incremental"]), bases[40].incremental) == []


def test_differences_name_every_difference_in_words(bases: dict[int, Base], tmp_path: Path) -> None:
    before = bases[40].incremental
    world = real_time_world(tmp_path)
    try:
        prepare(world, PHASES["incremental"], bases[40].snap)
        world.mailchimp.add_member(world.list_id, "extra@firm.io")
        world.mailchimp.unsubscribe(world.list_id, "p0@firm.io")
        world.kommo.notes += [
            {
                "entity_type": "contacts",
                "entity_id": world.scenario.contacts[0],
                "params": {"text": "Unsubscribed on 2026-01-02."},
            }
        ] * 2
        after = end_state(world)
    finally:
        world.close()
    found = differences(before, after)
    assert "mailchimp p0@firm.io status: 'subscribed' != 'unsubscribed'" in found
    assert "mailchimp p0@firm.io tags: {'In Progress'} != {'New Lead'}" in found
    assert any(line.startswith("mailchimp extra@firm.io: not expected") for line in found)
    assert (
        "notes ('contacts', 'p0@firm.io (P0 Müller)', 'Unsubscribed on <date>.'): 0 != 2" in found
    )
    assert duplicates(after) == [
        "note ('contacts', 'p0@firm.io (P0 Müller)', 'Unsubscribed on <date>.') written 2 times"
    ]
