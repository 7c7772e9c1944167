"""How a turn ends, decided from values alone: no database, no Paseo."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.models import TurnStatus
from app.services.turn import decisions as decide
from app.services.turn.decisions import Ending, RecoveryFacts


@pytest.mark.parametrize(
    ("active", "has_agent", "interrupt", "expected"),
    [
        (None, False, False, "insert"),
        (None, True, True, "insert"),
        (TurnStatus.RUNNING, True, False, "busy"),
        (TurnStatus.QUEUED, True, True, "replace"),
        (TurnStatus.RUNNING, True, True, "replace"),
        # Still creating the agent: a second prompt would create a second agent.
        (TurnStatus.RUNNING, False, True, "busy"),
    ],
)
def test_admit_prompt(
    active: TurnStatus | None, has_agent: bool, interrupt: bool, expected: str
) -> None:
    assert decide.admit_prompt(active=active, has_agent=has_agent, interrupt=interrupt) == expected


@pytest.mark.parametrize(
    ("outcome", "status", "code"),
    [
        ("completed", TurnStatus.COMPLETED, None),
        ("interrupted", TurnStatus.INTERRUPTED, "replaced"),
        ("error", TurnStatus.FAILED, "agent_error"),
        ("timeout", TurnStatus.FAILED, "agent_error"),
    ],
)
def test_an_outcome_without_cancel_is_the_outcome(
    outcome: Any, status: TurnStatus, code: str | None
) -> None:
    ending = decide.ending_for_outcome(outcome, "msg", cancel_requested=False, stop_confirmed=False)
    assert (ending.status, ending.error_code) == (status, code)


@pytest.mark.parametrize("outcome", ["completed", "error", "interrupted"])
def test_a_requested_cancel_wins_over_the_outcome(outcome: Any) -> None:
    confirmed = decide.ending_for_outcome(
        outcome, "msg", cancel_requested=True, stop_confirmed=True
    )
    unconfirmed = decide.ending_for_outcome(
        outcome, "msg", cancel_requested=True, stop_confirmed=False
    )
    assert confirmed.status == TurnStatus.CANCELLED
    assert (unconfirmed.status, unconfirmed.error_code) == (TurnStatus.FAILED, "cancel_unconfirmed")


def test_limits_say_which_and_how_long() -> None:
    wall = decide.ending_for_limit("turn_timeout", 3600)
    idle = decide.ending_for_limit("turn_idle_timeout", 900)
    assert (wall.status, wall.error_code) == (TurnStatus.TIMED_OUT, "turn_timeout")
    assert "3600 s in all" in wall.message and "900 s without output" in idle.message


def test_before_start() -> None:
    assert decide.ending_before_start(cancel_requested=True).status == TurnStatus.CANCELLED
    replaced = decide.ending_before_start(cancel_requested=False)
    assert (replaced.status, replaced.error_code) == (TurnStatus.INTERRUPTED, "replaced")


@pytest.mark.parametrize(
    ("replaced", "delivered", "status", "stop"),
    [
        (True, False, TurnStatus.FAILED, True),
        (True, False, TurnStatus.CANCELLED, True),
        (True, True, TurnStatus.FAILED, False),
        (False, False, TurnStatus.FAILED, False),
        (True, False, TurnStatus.COMPLETED, False),
    ],
)
def test_the_agent_is_stopped_only_when_a_replaced_prompt_would_run_unseen(
    replaced: bool, delivered: bool, status: TurnStatus, stop: bool
) -> None:
    ending = Ending(status, "x")
    outcome = decide.Failure("x", "x")
    assert (
        decide.must_stop_agent(outcome, ending, replaced_a_turn=replaced, delivered=delivered)
        is stop
    )


def test_a_limit_always_stops_the_agent() -> None:
    outcome = decide.LimitHit("turn_idle_timeout", 5)
    ending = decide.ending_of(outcome, cancel_requested=False, stop_confirmed=False)
    assert ending is not None
    assert decide.must_stop_agent(outcome, ending, replaced_a_turn=False, delivered=True)


@pytest.mark.parametrize(
    ("outcome", "cancel", "confirmed", "expected"),
    [
        # The transport's report, with and without a cancel asked for.
        (decide.Reported("completed", "done"), False, False, (TurnStatus.COMPLETED, None)),
        (decide.Reported("failed", "boom"), False, False, (TurnStatus.FAILED, "agent_error")),
        (
            decide.Reported("interrupted", "x"),
            False,
            False,
            (TurnStatus.INTERRUPTED, "replaced"),
        ),
        (decide.Reported("completed", "done"), True, True, (TurnStatus.CANCELLED, None)),
        (
            decide.Reported("completed", "done"),
            True,
            False,
            (TurnStatus.FAILED, "cancel_unconfirmed"),
        ),
        # A limit, however the cancel stands.
        (
            decide.LimitHit("turn_timeout", 60),
            True,
            False,
            (TurnStatus.TIMED_OUT, "turn_timeout"),
        ),
        (
            decide.LimitHit("turn_idle_timeout", 9),
            False,
            False,
            (TurnStatus.TIMED_OUT, "turn_idle_timeout"),
        ),
        (decide.CalledOff(), False, False, (TurnStatus.CANCELLED, None)),
        (decide.Failure("paseo_down", "gone"), False, False, (TurnStatus.FAILED, "paseo_down")),
        (decide.Settled(decide.FINISHED_AWAY), True, False, (TurnStatus.COMPLETED, None)),
        (decide.Settled(decide.REPLACED), False, False, (TurnStatus.INTERRUPTED, "replaced")),
    ],
)
def test_one_function_turns_every_outcome_into_the_ending(
    outcome: decide.Outcome,
    cancel: bool,
    confirmed: bool,
    expected: tuple[TurnStatus, str | None],
) -> None:
    ending = decide.ending_of(outcome, cancel_requested=cancel, stop_confirmed=confirmed)
    assert ending is not None
    assert (ending.status, ending.error_code) == expected


def test_an_ending_stored_elsewhere_is_not_stored_again() -> None:
    assert (
        decide.ending_of(decide.EndedElsewhere(), cancel_requested=True, stop_confirmed=True)
        is None
    )


def test_only_a_reported_end_waits_for_a_confirmed_stop() -> None:
    assert decide.must_confirm_stop(decide.Reported("completed", ""), cancel_requested=True)
    assert not decide.must_confirm_stop(decide.Reported("completed", ""), cancel_requested=False)
    assert not decide.must_confirm_stop(decide.LimitHit("turn_timeout", 1), cancel_requested=True)
    assert not decide.must_confirm_stop(decide.Failure("x", "y"), cancel_requested=True)


def test_usage_comes_with_the_outcomes_that_carry_it() -> None:
    usage = {"output_tokens": 3}
    assert decide.usage_of(decide.Reported("completed", "", usage)) == usage
    assert decide.usage_of(decide.Settled(decide.FINISHED_AWAY, usage)) == usage
    assert decide.usage_of(decide.Failure("x", "y")) is None


def test_one_cancel_deadline_counts_from_the_stored_request() -> None:
    requested = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert decide.cancel_deadline(requested, 15) == requested + timedelta(seconds=15)


# --- recovery ----------------------------------------------------------------------------

DELIVERED = {"queued": False, "agent_known": True, "prompt_sent": True, "prompt_delivered": True}


def _recover(**facts: Any) -> decide.Recovery:
    return decide.recover(RecoveryFacts(**{**DELIVERED, "latest_is_this_prompt": True, **facts}))


def _code(recovery: decide.Recovery) -> str | None:
    assert isinstance(recovery, Ending), recovery
    return recovery.error_code


def test_recovery_before_anything_reached_paseo() -> None:
    assert _code(_recover(queued=True)) == "gateway_restarted"
    assert _code(_recover(agent_known=False)) == "gateway_restarted"
    assert _code(_recover(agent_exists=False)) == "agent_missing"


@pytest.mark.parametrize(
    ("sent", "recorded", "earlier", "reached"),
    [
        (False, 1, 0, False),  # never sent: whatever the transcript says, not this turn's
        (True, 0, 0, False),
        (True, 1, 0, True),  # the gateway died between send and the record
        (True, 1, 1, False),  # the one `[User]` item is an earlier turn's
        (True, 2, 1, True),
    ],
)
def test_an_unrecorded_delivery_is_read_from_the_transcript(
    sent: bool, recorded: int, earlier: int, reached: bool
) -> None:
    facts = RecoveryFacts(
        queued=False,
        agent_known=True,
        prompt_sent=sent,
        times_recorded=recorded,
        earlier_deliveries=earlier,
        latest_is_this_prompt=True,
    )
    assert decide.prompt_reached_paseo(facts) is reached
    if not reached:
        assert _code(decide.recover(facts)) == "prompt_not_delivered"


def test_a_reply_counts_only_after_this_turns_own_prompt() -> None:
    assert _code(_recover(latest_is_this_prompt=False)) == "replaced"
    assert _recover() == "finished"


def test_recovery_of_a_delivered_turn() -> None:
    assert _recover(agent_status="running") == "follow"
    assert _recover(agent_status="initializing") == "follow"
    cancelled = _recover(cancel_requested=True)
    assert isinstance(cancelled, Ending) and cancelled.status == TurnStatus.CANCELLED
    assert _code(_recover(agent_status="error")) == "agent_error"


@pytest.mark.parametrize(
    ("has_agent", "earlier_prompt_sent", "look"),
    [(False, False, False), (False, True, True), (True, True, False), (True, False, False)],
)
def test_a_lost_agent_is_looked_for_only_after_a_prompt_was_sent(
    has_agent: bool, earlier_prompt_sent: bool, look: bool
) -> None:
    assert (
        decide.must_look_for_lost_agent(
            has_agent=has_agent, earlier_prompt_sent=earlier_prompt_sent
        )
        is look
    )


def test_who_answered_a_permission() -> None:
    """The gateway's record (it knows the key) wins over what Paseo showed."""
    mine = decide.Resolution("deny", "alice", "not now")
    assert decide.resolution(mine, "allow") == mine
    assert decide.resolution(None, "allow") == decide.Resolution("allow", "paseo")
    assert decide.resolution(None, None) == decide.Resolution("unknown", "paseo")
    assert "60 s" in decide.permission_timeout_message(60)
