"""The turn state machine: every status a turn can have and the moves allowed between them.

    queued ──> running ──> completed | failed | cancelled | timed_out | interrupted
       │        ↑   │
       │        │   └──> waiting_permission ──> completed | failed | cancelled | timed_out
       │        └───────────────┘                | interrupted
       └─────> cancelled | failed | interrupted

`waiting_permission`: the agent asked a person (`turn.permission_requested`); answered
(`turn.permission_resolved`), the turn runs on to its end. A move not listed here is a bug
in the gateway: `check_transition` raises, loudly.
"""

from __future__ import annotations

from app.models import TurnStatus

_ENDINGS = frozenset(
    {
        TurnStatus.COMPLETED,
        TurnStatus.FAILED,
        TurnStatus.CANCELLED,
        TurnStatus.TIMED_OUT,
        TurnStatus.INTERRUPTED,
    }
)
ALLOWED_TRANSITIONS: dict[TurnStatus, frozenset[TurnStatus]] = {
    TurnStatus.QUEUED: frozenset(
        {TurnStatus.RUNNING, TurnStatus.CANCELLED, TurnStatus.FAILED, TurnStatus.INTERRUPTED}
    ),
    TurnStatus.RUNNING: _ENDINGS | {TurnStatus.WAITING_PERMISSION},
    TurnStatus.WAITING_PERMISSION: _ENDINGS | {TurnStatus.RUNNING},
    TurnStatus.COMPLETED: frozenset(),
    TurnStatus.FAILED: frozenset(),
    TurnStatus.CANCELLED: frozenset(),
    TurnStatus.TIMED_OUT: frozenset(),
    TurnStatus.INTERRUPTED: frozenset(),
}

# A turn in one of these has an outcome; its event stream ends with the matching event.
FINAL_STATUSES = frozenset(status for status, moves in ALLOWED_TRANSITIONS.items() if not moves)

TERMINAL_EVENT_BY_STATUS: dict[TurnStatus, str] = {
    TurnStatus.COMPLETED: "turn.completed",
    TurnStatus.FAILED: "turn.failed",
    TurnStatus.CANCELLED: "turn.cancelled",
    TurnStatus.TIMED_OUT: "turn.timed_out",
    TurnStatus.INTERRUPTED: "turn.interrupted",
}
# Not endings: the agent asks a person, and the answer comes.
PERMISSION_REQUESTED = "turn.permission_requested"
PERMISSION_RESOLVED = "turn.permission_resolved"
# `turn.permission` ended turns stored before a permission became an event (migration 0007):
# a replay of one still ends there.
TERMINAL_EVENTS = frozenset(TERMINAL_EVENT_BY_STATUS.values()) | {"turn.permission"}


class IllegalTurnTransition(RuntimeError):
    """The gateway tried a move the state machine does not allow."""


def sources_of(target: TurnStatus) -> frozenset[TurnStatus]:
    """Every status from which `target` may be reached (for compare-and-set updates)."""
    return frozenset(source for source, moves in ALLOWED_TRANSITIONS.items() if target in moves)


def check_transition(current: str, target: str) -> None:
    if TurnStatus(target) not in ALLOWED_TRANSITIONS[TurnStatus(current)]:
        raise IllegalTurnTransition(f"a turn cannot go from {current!r} to {target!r}")
