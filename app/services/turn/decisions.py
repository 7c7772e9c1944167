"""What a turn's facts decide: pure functions of values, tested without a database or Paseo.

Every way a turn can end is decided here: the run collects how it stopped as an `Outcome`
value (the transport's report, a limit, a cancel before the prompt went out, a failure, a
decision already taken by recovery, or an ending stored elsewhere), `ending_of` turns it into
the one `Ending`, and the run's one writer stores that. Also here: what a new prompt may do to
a session's active turn, and how an orphaned turn is recovered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from app.models import TurnStatus
from app.paseo.types import TurnOutcome


@dataclass(frozen=True)
class Ending:
    """How a turn ends: its final status, the message its terminal event carries, a code."""

    status: TurnStatus
    message: str
    error_code: str | None = None


LimitKind = Literal["turn_timeout", "turn_idle_timeout"]


# --- how a run stopped, as values -------------------------------------------------------------


@dataclass(frozen=True)
class Reported:
    """The transport reported the turn's end."""

    outcome: TurnOutcome
    message: str
    usage: dict[str, Any] | None = None


@dataclass(frozen=True)
class LimitHit:
    """The turn ran over a limit (`seconds` of it) and was stopped."""

    kind: LimitKind
    seconds: float


@dataclass(frozen=True)
class CalledOff:
    """A cancel was asked for before the prompt reached Paseo (or the turn left the queue)."""


@dataclass(frozen=True)
class Failure:
    """Running the turn failed: Paseo's error, a request that became invalid, a bug."""

    code: str
    message: str


@dataclass(frozen=True)
class Settled:
    """The ending is known already (recovery decided it, the session went away)."""

    ending: Ending
    usage: dict[str, Any] | None = None


@dataclass(frozen=True)
class EndedElsewhere:
    """Another request or process ended or took the turn: nothing is stored here."""


Outcome = Reported | LimitHit | CalledOff | Failure | Settled | EndedElsewhere


def ending_of(outcome: Outcome, *, cancel_requested: bool, stop_confirmed: bool) -> Ending | None:
    """The one ending of a run that stopped with `outcome` (None: nothing to store).

    `cancel_requested` and `stop_confirmed` matter only to a transport's report: a requested
    cancel wins over what the transport said.
    """
    if isinstance(outcome, Reported):
        return ending_for_outcome(
            outcome.outcome,
            outcome.message,
            cancel_requested=cancel_requested,
            stop_confirmed=stop_confirmed,
        )
    if isinstance(outcome, LimitHit):
        return ending_for_limit(outcome.kind, outcome.seconds)
    if isinstance(outcome, CalledOff):
        return ending_before_start(cancel_requested=True)
    if isinstance(outcome, Failure):
        return ending_for_failure(outcome.code, outcome.message)
    if isinstance(outcome, Settled):
        return outcome.ending
    return None


def usage_of(outcome: Outcome) -> dict[str, Any] | None:
    """The usage the ending records, when the outcome carries one."""
    if isinstance(outcome, Reported | Settled):
        return outcome.usage
    return None


def must_confirm_stop(outcome: Outcome, *, cancel_requested: bool) -> bool:
    """Whether to wait for Paseo to confirm the agent stopped before deciding: only when a
    cancel was asked for and the transport reported an end (a stopped turn reports one)."""
    return cancel_requested and isinstance(outcome, Reported)


# --- a new prompt and the session's active turn ------------------------------------------------

Admission = Literal["insert", "replace", "busy"]


def admit_prompt(*, active: TurnStatus | None, has_agent: bool, interrupt: bool) -> Admission:
    """What a new prompt may do: start (`insert`), end the active turn and start (`replace`),
    or nothing (`busy`: 409, and nothing was changed).

    A turn that is still creating the session's agent cannot be replaced: a second prompt
    would create a second agent.
    """
    if active is None:
        return "insert"
    if interrupt and has_agent:
        return "replace"
    return "busy"


SteerAdmission = Literal["steer", "no_turn", "busy"]


def admit_steer(*, active: TurnStatus | None, has_agent: bool) -> SteerAdmission:
    """What a steering prompt may do: join the active turn (`steer`), or nothing: no turn
    runs (`no_turn`), or the turn is still creating the agent it would steer (`busy`)."""
    if active is None:
        return "no_turn"
    if not has_agent:
        return "busy"
    return "steer"


REPLACED = Ending(
    TurnStatus.INTERRUPTED, "replaced by a newer prompt (mode=interrupt)", error_code="replaced"
)


def ending_for_closed_session(status: str) -> Ending:
    """A queued turn whose session was closed (or lost its agent) while it waited."""
    return Ending(TurnStatus.INTERRUPTED, f"the session became {status} before it ran")


def ending_for_unserved_daemon(daemon: str) -> Ending:
    """An orphaned turn on a daemon this gateway no longer serves cannot be followed."""
    return Ending(
        TurnStatus.FAILED,
        f"the turn's daemon {daemon!r} is no longer configured; add it back to follow it",
        "unknown_daemon",
    )


# --- a turn that ran to an outcome --------------------------------------------------------------


def ending_for_outcome(
    outcome: TurnOutcome, message: str, *, cancel_requested: bool, stop_confirmed: bool
) -> Ending:
    """The ending of a turn whose transport reported `outcome`.

    A requested cancel wins over the outcome (a stopped mock turn reports `completed`): it
    ends `cancelled` once Paseo confirmed the stop, else `failed`.
    """
    if cancel_requested:
        if stop_confirmed:
            return Ending(TurnStatus.CANCELLED, "cancelled")
        return Ending(
            TurnStatus.FAILED,
            "Paseo never confirmed that the agent stopped",
            error_code="cancel_unconfirmed",
        )
    if outcome == "completed":
        return Ending(TurnStatus.COMPLETED, message)
    if outcome == "interrupted":
        return Ending(TurnStatus.INTERRUPTED, message, error_code="replaced")
    return Ending(TurnStatus.FAILED, message, error_code="agent_error")


def ending_for_limit(kind: LimitKind, seconds: float) -> Ending:
    what = "in all" if kind == "turn_timeout" else "without output"
    return Ending(
        TurnStatus.TIMED_OUT,
        f"the turn ran over its limit of {seconds:g} s {what}; the agent was stopped",
        error_code=kind,
    )


def ending_for_failure(code: str, message: str) -> Ending:
    return Ending(TurnStatus.FAILED, message, error_code=code)


def ending_before_start(*, cancel_requested: bool) -> Ending:
    """A turn that never left the queue (or never reached Paseo) and was called off."""
    if cancel_requested:
        return Ending(TurnStatus.CANCELLED, "cancelled before it reached the agent")
    return Ending(TurnStatus.INTERRUPTED, "replaced before it started", error_code="replaced")


def must_look_for_lost_agent(*, has_agent: bool, earlier_prompt_sent: bool) -> bool:
    """Whether to ask Paseo for an agent labelled with the session before creating one.

    Only an earlier turn that sent its prompt can have created an agent whose id never got
    recorded (`run -d` answered, the gateway died): without one, nothing is there to adopt,
    and a first prompt saves the call (seconds on the CLI).
    """
    return not has_agent and earlier_prompt_sent


def must_stop_agent(
    outcome: Outcome, ending: Ending, *, replaced_a_turn: bool, delivered: bool
) -> bool:
    """Whether the run that ends this turn must stop the agent.

    A limit stops the agent (it would go on working for nobody). A turn that replaced a
    running one (mode=interrupt) but whose own prompt never reached Paseo leaves the agent
    working on the replaced prompt, which nobody follows any more.
    """
    if isinstance(outcome, LimitHit):
        return True
    return replaced_a_turn and not delivered and ending.status != TurnStatus.COMPLETED


# --- cancelling ------------------------------------------------------------------------------


def cancel_deadline(requested_at: datetime, confirm_seconds: float) -> datetime:
    """The one deadline of a cancel: the HTTP answer (200 or 202), the stream's
    `turn.cancelling` and the runner's stop retries all count from the stored request."""
    return requested_at + timedelta(seconds=confirm_seconds)


# --- recovery of a turn whose gateway died -----------------------------------------------------


@dataclass(frozen=True)
class RecoveryFacts:
    """What is known of an orphaned turn, from the database and from Paseo."""

    queued: bool
    agent_known: bool
    agent_exists: bool = True
    agent_status: str = "idle"
    prompt_sent: bool = False
    prompt_delivered: bool = False
    # From the transcript: how often the prompt is recorded, against how many earlier turns
    # of the session with the same prompt reached Paseo; whether the latest turn is this one.
    times_recorded: int = 0
    earlier_deliveries: int = 0
    latest_is_this_prompt: bool = False
    cancel_requested: bool = False


Recovery = Ending | Literal["follow", "finished"]


def prompt_reached_paseo(facts: RecoveryFacts) -> bool:
    """Delivered if recorded so, or if the transcript has this prompt more often than the
    session's earlier turns put it there (a gateway may die between send and the record)."""
    if facts.prompt_delivered:
        return True
    return facts.prompt_sent and facts.times_recorded > facts.earlier_deliveries


def recover(facts: RecoveryFacts) -> Recovery:
    """`follow`: the agent still runs this turn; `finished`: it ended while the gateway was
    away (take its reply); or the turn's ending."""
    if facts.queued:
        return Ending(
            TurnStatus.INTERRUPTED,
            "the gateway stopped before this turn started",
            error_code="gateway_restarted",
        )
    if not facts.agent_known:
        return Ending(
            TurnStatus.INTERRUPTED,
            "the gateway stopped before the agent was created",
            error_code="gateway_restarted",
        )
    if not facts.agent_exists:
        return Ending(
            TurnStatus.INTERRUPTED, "the agent no longer exists", error_code="agent_missing"
        )
    if not prompt_reached_paseo(facts):
        return Ending(
            TurnStatus.INTERRUPTED,
            "the gateway stopped before the prompt reached the agent; send it again",
            error_code="prompt_not_delivered",
        )
    if not facts.latest_is_this_prompt:
        return Ending(
            TurnStatus.INTERRUPTED, "another prompt replaced this turn", error_code="replaced"
        )
    if facts.agent_status in ("running", "initializing"):
        return "follow"  # waiting for a permission too: the request is found again
    if facts.cancel_requested:
        return Ending(TurnStatus.CANCELLED, "cancelled; the agent had already stopped")
    if facts.agent_status == "error":
        return Ending(TurnStatus.FAILED, "the agent reported an error", error_code="agent_error")
    return "finished"


FINISHED_AWAY = Ending(TurnStatus.COMPLETED, "finished while the gateway was away")


@dataclass(frozen=True)
class Resolution:
    """How a permission request was answered, as `turn.permission_resolved` says it."""

    behavior: str  # allow, deny, or unknown (answered outside the gateway, unseen)
    by: str  # the key's name, `timeout`, or `paseo` (answered outside the gateway)
    message: str | None = None


PERMISSION_TIMEOUT_BY = "timeout"


def resolution(recorded: Resolution | None, seen_behavior: str | None) -> Resolution:
    """Who answered: the gateway's own record wins (it knows the key); else what Paseo
    showed, answered outside the gateway (Paseo's own apps)."""
    if recorded is not None:
        return recorded
    return Resolution(seen_behavior or "unknown", "paseo")


def permission_timeout_message(seconds: float) -> str:
    """The deny the gateway sends for a request nobody answered in time."""
    return f"nobody answered within {seconds:g} s (PASEO_GATEWAY_PERMISSION_TIMEOUT_SECONDS)"
