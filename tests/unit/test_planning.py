"""What was pushed for a person is found under any of their cards and kept under one identity."""

from __future__ import annotations

from pathlib import Path

from kommo_sync.model import Person, Stage
from kommo_sync.planning import pushed_for
from kommo_sync.state import State


def person(identity: int, *cards: int) -> Person:
    return Person(
        identity, "ada@firm.io", "Ada", "", None, None, None, True, Stage.NEW,
        contact_ids=(identity, *cards),
    )  # fmt: skip


def rows(state: State, destination: str) -> dict[int, str]:
    found = state.db.execute(
        "SELECT person_id, data FROM pushed WHERE destination = ?", (destination,)
    )
    return dict(found)


def test_a_record_under_another_card_moves_to_the_identity_at_every_destination(
    tmp_path: Path,
) -> None:
    with State.open(tmp_path / "state.db") as state, state.transaction():
        state.record_pushed("mailchimp", [(7, "f1", {"hash": "h"})])
        state.record_pushed("klaviyo", [(7, "f2", {"profile_id": "p"})])
        found = pushed_for(state, "mailchimp", [person(3, 7)])
        assert found == {3: {"hash": "h"}}
        assert set(rows(state, "mailchimp")) == {3}
        assert set(rows(state, "klaviyo")) == {3}  # one identity everywhere


def test_the_identitys_own_record_wins_and_nothing_moves(tmp_path: Path) -> None:
    with State.open(tmp_path / "state.db") as state, state.transaction():
        state.record_pushed("mailchimp", [(3, "f1", {"hash": "mine"}), (7, "f2", {"hash": "x"})])
        assert pushed_for(state, "mailchimp", [person(3, 7)]) == {3: {"hash": "mine"}}
        assert set(rows(state, "mailchimp")) == {3, 7}


def test_a_person_never_pushed_finds_nothing(tmp_path: Path) -> None:
    with State.open(tmp_path / "state.db") as state, state.transaction():
        assert pushed_for(state, "mailchimp", [person(3, 7)]) == {}


def test_moving_onto_a_card_that_has_a_record_drops_the_leaving_ones(tmp_path: Path) -> None:
    with State.open(tmp_path / "state.db") as state, state.transaction():
        state.record_pushed("mailchimp", [(3, "f1", {"hash": "kept"}), (7, "f2", {"hash": "x"})])
        state.record_pushed("klaviyo", [(7, "f3", {"profile_id": "p"})])
        assert state.move_pushed([(7, 3)]) == 1  # Klaviyo's moved; Mailchimp's 3 stays
        assert set(rows(state, "mailchimp")) == {3} and set(rows(state, "klaviyo")) == {3}
        assert "kept" in rows(state, "mailchimp")[3]
