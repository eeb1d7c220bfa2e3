"""Issue 10, lost answers: for every write endpoint, in the phase where it occurs, the vendor
applies the first request and its answer is lost (the connection drops after the handler ran).
Runs go on until quiet; the world must equal a clean run's, with nothing stored or noted twice
and no note about our own unsubscribes. In-process, in simulated time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.reliability.harness import (
    PHASES,
    WRITES,
    Base,
    Point,
    build_base,
    check,
    prepare,
    settle,
    simulated_world,
)

XFAIL: dict[str, str] = {}


def _param(point: Point) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=XFAIL[point.id])] if point.id in XFAIL else []
    return pytest.param(point, id=point.id, marks=marks)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    """The clean references (first sync, then the incremental changes) and the settled first
    sync."""
    return build_base(tmp_path_factory.mktemp("base"), PHASES["incremental"], simulated=True)


@pytest.mark.parametrize("point", [_param(p) for p in WRITES])
def test_a_write_whose_first_answer_is_lost_ends_as_a_clean_run_with_nothing_twice(
    point: Point, base: Base, tmp_path: Path
) -> None:
    phase = PHASES[point.phase]
    world = simulated_world(tmp_path, base.snap if phase.incremental else None)
    try:
        prepare(world, phase, base.snap)
        fault = point.sandbox(world).faults.add(point.fault(kind="reset_after", attempt=1, times=1))
        codes = settle(world)
        assert fault.hits == 1, f"{point.method} {point.path} never came in this phase"
        assert codes[-1] == 0, f"the runs exit {codes}"
        problems = check(base.incremental if phase.incremental else base.first, world)
        assert not problems, "\n".join(problems)
    finally:
        world.close()
