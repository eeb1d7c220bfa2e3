"""Only the thread that opened the state may touch it; destination memory still serves the
push workers."""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from kommo_sync.memory import DestinationMemory
from kommo_sync.state import StateThreadError


def on_worker(work: Callable[[], Any]) -> Any:
    """`work()` on a thread named push_0, its result (or its error) handed back."""
    with ThreadPoolExecutor(1, thread_name_prefix="push") as pool:
        return pool.submit(work).result()


@pytest.fixture
def state(any_state):
    with any_state.open() as opened:
        yield opened


def test_another_thread_reading_the_state_gets_an_error_naming_both_threads(state):
    with pytest.raises(StateThreadError) as raised:
        on_worker(lambda: state.cursor("kommo.updated_at"))
    assert str(raised.value) == "the state is owned by thread MainThread; push_0 touched it"


@pytest.mark.parametrize(
    "touch",
    [
        lambda state: state.set_cursor("kommo.updated_at", 1),
        lambda state: state.mark_dirty([1]),
        lambda state: state.dirty_seq(),
        lambda state: next(state.ready_batches(10)),
        lambda state: state.transaction().__enter__(),
        lambda state: state.meta("mailchimp", "managed_tags"),
    ],
    ids=["write", "queue", "sequence", "batches", "transaction", "memory"],
)
def test_every_way_into_the_state_checks_the_thread(state, touch):
    with pytest.raises(StateThreadError):
        on_worker(lambda: touch(state))


def test_a_dry_run_state_is_guarded_too(any_state):
    with any_state.open(dry_run=True) as state:
        with pytest.raises(StateThreadError):
            on_worker(state.dirty_count)
        assert state.dirty_count() == 0


def test_the_thread_that_opens_the_state_owns_it(any_state):
    def open_and_use() -> dict[str, int]:
        with any_state.open() as state:
            with state.transaction():
                state.set_cursor("kommo.updated_at", 5)
            return state.cursors()

    assert on_worker(open_and_use) == {"kommo.updated_at": 5}


def test_a_worker_reads_the_destination_memory_stored_before_the_run(state):
    with state.transaction():
        state.set_meta("mailchimp", "managed_tags", ["Customer"])
    memory = DestinationMemory(state, "mailchimp")
    assert on_worker(lambda: memory.get("managed_tags")) == ["Customer"]
    assert on_worker(lambda: memory.get("segments", {})) == {}


def test_a_worker_reads_what_it_set_before_and_after_the_flush(state):
    memory = DestinationMemory(state, "klaviyo")
    on_worker(lambda: memory.set("suppressions_read_at", 100))
    assert on_worker(lambda: memory.get("suppressions_read_at")) == 100
    memory.flush()
    assert memory.pending == {}
    assert state.meta("klaviyo", "suppressions_read_at") == 100
    assert on_worker(lambda: memory.get("suppressions_read_at")) == 100


def test_the_owning_thread_reads_what_the_engine_stored_directly(state):
    memory = DestinationMemory(state, "mailchimp")
    with state.transaction():
        state.set_meta("mailchimp", "settings", {"list_id": "a1"})
    assert memory.get("settings") == {"list_id": "a1"}
    with state.transaction():
        state.forget_pushed("mailchimp")
    assert memory.get("settings") is None


def test_a_worker_gets_its_own_copy_of_a_stored_value(state):
    with state.transaction():
        state.set_meta("mailchimp", "managed_tags", ["Customer"])
    memory = DestinationMemory(state, "mailchimp")
    on_worker(lambda: memory.get("managed_tags").append("changed"))
    assert on_worker(lambda: memory.get("managed_tags")) == ["Customer"]
