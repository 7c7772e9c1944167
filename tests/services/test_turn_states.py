"""The turn state machine: what may follow what, and that anything else fails loudly."""

from __future__ import annotations

import itertools

import pytest

from app.models import ACTIVE_TURN_STATUSES, TurnStatus
from app.services.turn.states import (
    ALLOWED_TRANSITIONS,
    FINAL_STATUSES,
    TERMINAL_EVENT_BY_STATUS,
    IllegalTurnTransition,
    check_transition,
    sources_of,
)

EXPECTED = {
    ("queued", "running"),
    ("queued", "cancelled"),
    ("queued", "failed"),
    ("queued", "interrupted"),
    ("running", "completed"),
    ("running", "failed"),
    ("running", "cancelled"),
    ("running", "timed_out"),
    ("running", "waiting_permission"),
    ("running", "interrupted"),
    ("waiting_permission", "running"),
    ("waiting_permission", "completed"),
    ("waiting_permission", "failed"),
    ("waiting_permission", "cancelled"),
    ("waiting_permission", "timed_out"),
    ("waiting_permission", "interrupted"),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(TurnStatus, TurnStatus)))
def test_every_pair_is_allowed_or_refused(current: TurnStatus, target: TurnStatus) -> None:
    if (current.value, target.value) in EXPECTED:
        check_transition(current, target)
    else:
        with pytest.raises(IllegalTurnTransition):
            check_transition(current, target)


def test_every_status_is_in_the_table() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(TurnStatus)


def test_final_statuses_have_a_terminal_event_and_active_ones_do_not() -> None:
    assert set(TERMINAL_EVENT_BY_STATUS) == set(FINAL_STATUSES)
    assert not set(ACTIVE_TURN_STATUSES) & set(FINAL_STATUSES)
    assert len(set(TERMINAL_EVENT_BY_STATUS.values())) == len(TERMINAL_EVENT_BY_STATUS)


def test_sources_of_reads_the_table_backwards() -> None:
    assert sources_of(TurnStatus.RUNNING) == {TurnStatus.QUEUED, TurnStatus.WAITING_PERMISSION}
    assert sources_of(TurnStatus.CANCELLED) == {
        TurnStatus.QUEUED,
        TurnStatus.RUNNING,
        TurnStatus.WAITING_PERMISSION,
    }
    assert sources_of(TurnStatus.QUEUED) == frozenset()
