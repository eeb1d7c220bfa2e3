"""What each destination learned of its bulk jobs' durations is kept in the state, its own, so the
next run (a process of its own under cron) aims its first poll at the job's end."""

from __future__ import annotations

from kommo_sync.app import build_engine
from kommo_sync.memory import DestinationMemory
from kommo_sync.state import State
from tests.conftest import World


def test_each_destination_keeps_its_own_job_times_for_the_next_run(
    world: World, sales: int
) -> None:
    world.with_mailchimp().with_klaviyo()
    for n in range(40):  # past both destinations' small-run paths: bulk jobs
        world.kommo.add_contact(f"P{n}", email=f"p{n}@firm.io", consent=True)
    world.run()
    with State.open(world.config().state, dry_run=True) as state:
        kept = {name: state.meta(name, "job_times") for name in ("mailchimp", "klaviyo")}
    assert kept["klaviyo"], "Klaviyo's profile import jobs were timed and kept"
    assert kept["mailchimp"] != kept["klaviyo"]  # never one model for two vendors
    engine = build_engine(world.config(), world.clock)
    klaviyo = next(d for d in engine.destinations if d.name == "klaviyo")
    with State.open(world.config().state, dry_run=True) as state:
        klaviyo.prepare(DestinationMemory(state, "klaviyo"), dry_run=True)
    assert klaviyo.job_timer.remembered() == kept["klaviyo"]
    assert klaviyo.job_timer.estimate(40) is not None
