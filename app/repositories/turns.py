"""SQL for the `turns` table. Functions only flush: the caller owns the transaction.

At most one turn per session is queued or running: a partial unique index enforces it and
`ActiveTurnExists` reports it; an idempotency key is used once per session, and
`DuplicateIdempotencyKey` reports a second use. After either error, write nothing more in the
transaction (if a statement failed, PostgreSQL has aborted it; a failed flush needs a
rollback): leave the `Database.session()` block, by the exception or after catching it, and it
ends cleanly without the refused row. Read what won (the active turn, the key's turn) in a new
session.

Durable turns: the process running a turn (`runner_id`) stamps `heartbeat_at` while it runs
and lets go of it (`let_go`) when it stops following it; another process may take over an
active turn let go of, or whose heartbeat has gone stale (`claim_stale_turns`).
Status changes that race go through `transition_turn`, a compare-and-set; a turn ends only
through `finish_turn`, which also hands out the number of its terminal event.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypedDict, Unpack

from sqlalchemy import (
    ColumnElement,
    Label,
    and_,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import attributes, util

from app.models import ACTIVE_TURN_STATUSES, GatewaySession, Turn, TurnStatus, utcnow
from app.repositories.locks import lock_and_read_row, lock_row
from app.repositories.sessions import check_page

ACTIVE_TURN_INDEX = "uq_turns_one_active_per_session"
IDEMPOTENCY_KEY_INDEX = "uq_turns_session_id_idempotency_key"
# SQLite names the columns of a violated unique index, not the index.
_SQLITE_ACTIVE_TURN_VIOLATION = "UNIQUE constraint failed: turns.session_id"
_SQLITE_IDEMPOTENCY_KEY_VIOLATION = (
    "UNIQUE constraint failed: turns.session_id, turns.idempotency_key"
)
# An UPDATE ... RETURNING of whole turns also refreshes the copies this session already holds.
_REFRESH_RETURNED = {"synchronize_session": False, "populate_existing": True}


class ActiveTurnExists(Exception):
    """The session already has a queued or running turn."""

    def __init__(self, session_id: uuid.UUID) -> None:
        super().__init__(f"session {session_id} already has a queued or running turn")
        self.session_id = session_id


class DuplicateIdempotencyKey(Exception):
    """The session already has a turn made with this idempotency key."""

    def __init__(self, session_id: uuid.UUID, key: str) -> None:
        super().__init__(f"session {session_id} already has a turn with idempotency key {key!r}")
        self.session_id = session_id
        self.key = key


class TurnNotWritable(Exception):
    """The turn has ended, or another runner holds it: nothing more may be written for it."""

    def __init__(self, turn_id: uuid.UUID) -> None:
        super().__init__(f"turn {turn_id} has ended or is run elsewhere; it takes no more events")
        self.turn_id = turn_id


class _TurnOutcome(TypedDict, total=False):
    final_text: str | None
    error_code: str | None
    error_message: str | None
    usage: dict[str, Any] | None
    finished_at: datetime | None
    cancel_requested_at: datetime | None


class TurnChanges(_TurnOutcome, total=False):
    """What `update_turn` may change; a key left out stays as it is."""

    status: str


class TransitionChanges(_TurnOutcome, total=False):
    """What `transition_turn` may change beside the status; a key left out stays as it is."""

    runner_id: str | None
    heartbeat_at: datetime | None
    idempotency_key: str | None


async def add_turn(
    session: AsyncSession,
    *,
    session_id: uuid.UUID,
    prompt: str,
    status: str = TurnStatus.QUEUED,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    runner_id: str | None = None,
    heartbeat_at: datetime | None = None,
    replaces_turn_id: uuid.UUID | None = None,
    key_id: uuid.UUID | None = None,
    last_event_seq: int = 0,
    session_locked: bool = False,
) -> Turn:
    """Insert the session's next turn, numbered 1, 2, ... in one statement.

    Raises `ActiveTurnExists` when `status` is queued or running and another turn is, and
    `DuplicateIdempotencyKey` when the session has a turn with `idempotency_key` already. The
    key is checked in the INSERT itself (it inserts nothing then), so a retry of an active
    turn's request is told apart from another request on a busy session on both backends.

    `last_event_seq`: how many events the caller stores with the turn, in this transaction
    (`turn_events.add_first_events`). `session_locked`: this transaction holds the session
    row's lock already (`lock_session`), so it is not taken again.
    """
    if not session_locked:
        await lock_session_row(session, session_id)
    values = {
        "session_id": session_id,
        "prompt": prompt,
        "status": status,
        "idempotency_key": idempotency_key,
        "request_hash": request_hash,
        "runner_id": runner_id,
        "heartbeat_at": heartbeat_at,
        "replaces_turn_id": replaces_turn_id,
        "key_id": key_id,
        "last_event_seq": last_event_seq,
    }
    next_number = (
        select(func.coalesce(func.max(Turn.number), 0) + 1)
        .where(Turn.session_id == session_id)
        .scalar_subquery()
    )
    row = select(*_bound(values), next_number.label("number"))
    if idempotency_key is not None:
        row = row.where(~exists().where(_has_key(session_id, idempotency_key)))
    statement = insert(Turn).from_select([*values, "number"], row).returning(Turn)
    with _reporting_conflicts(session_id, idempotency_key):
        added = (await session.scalars(statement)).one_or_none()
    if added is not None:
        return added
    assert idempotency_key is not None  # only the key's check can leave the SELECT empty
    raise DuplicateIdempotencyKey(session_id, idempotency_key)


async def get_turn(
    session: AsyncSession, turn_id: uuid.UUID, *, session_id: uuid.UUID | None = None
) -> Turn | None:
    """The turn; None if there is none, or it belongs to another session than `session_id`."""
    turn = await session.get(Turn, turn_id)
    if turn is None or (session_id is not None and turn.session_id != session_id):
        return None
    return turn


async def get_turn_by_idempotency_key(
    session: AsyncSession, session_id: uuid.UUID, key: str
) -> Turn | None:
    """The session's turn made with idempotency key `key`, if there is one."""
    return await session.scalar(select(Turn).where(_has_key(session_id, key)))


async def list_turns(
    session: AsyncSession, session_id: uuid.UUID, *, limit: int = 50, offset: int = 0
) -> tuple[list[Turn], int]:
    """One page of the session's turns, oldest first, and how many it has in all."""
    check_page(limit, offset)
    statement = (
        select(Turn)
        .where(Turn.session_id == session_id)
        .order_by(Turn.number)
        .limit(limit)
        .offset(offset)
    )
    page = list((await session.scalars(statement)).all())
    return page, await count_turns(session, session_id)


async def count_turns(session: AsyncSession, session_id: uuid.UUID) -> int:
    statement = select(func.count(Turn.id)).where(Turn.session_id == session_id)
    return (await session.scalar(statement)) or 0


@dataclass(frozen=True)
class UsageTotals:
    """A session's usage: how many turns it has, and what those that reported usage used."""

    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0


def _summed(key: str, *, as_float: bool = False) -> ColumnElement[Any]:
    """The sum of one key of the turns' `usage` JSON (0 where no turn has it)."""
    value = Turn.usage[key].as_float() if as_float else Turn.usage[key].as_integer()
    return func.coalesce(func.sum(value), 0)


async def usage_totals(session: AsyncSession, session_id: uuid.UUID) -> UsageTotals:
    """The session's turns counted and their usage summed, in one aggregate statement (the
    JSON keys read in SQL: `json_extract` on SQLite, `->>` on PostgreSQL)."""
    statement = select(
        func.count(Turn.id),
        _summed("input_tokens"),
        _summed("output_tokens"),
        _summed("cached_tokens"),
        _summed("cost_usd", as_float=True),
    ).where(Turn.session_id == session_id)
    turns, input_tokens, output_tokens, cached_tokens, cost = (
        await session.execute(statement)
    ).one()
    return UsageTotals(
        turns=int(turns),
        input_tokens=int(input_tokens),
        output_tokens=int(output_tokens),
        cached_tokens=int(cached_tokens),
        cost_usd=round(float(cost), 10),  # no float noise from the sum
    )


async def get_active_turn(session: AsyncSession, session_id: uuid.UUID) -> Turn | None:
    """The session's queued or running turn, if it has one."""
    statement = select(Turn).where(
        Turn.session_id == session_id, Turn.status.in_(ACTIVE_TURN_STATUSES)
    )
    return await session.scalar(statement)


async def list_turns_in_statuses(session: AsyncSession, statuses: Iterable[str]) -> list[Turn]:
    """Every turn in one of `statuses`, oldest first (to recover them after a restart)."""
    statement = (
        select(Turn)
        .where(Turn.status.in_(_status_list(statuses)))
        .order_by(Turn.started_at, Turn.id)
    )
    return list((await session.scalars(statement)).all())


async def update_turn(session: AsyncSession, turn: Turn, **changes: Unpack[TurnChanges]) -> Turn:
    """Set the given fields on `turn` and flush them.

    `turn` may come from an earlier, closed session: it joins this one. Raises
    `ActiveTurnExists` when that would make a second active turn in its session.
    """
    if turn not in session:
        session.add(turn)
    for field, value in changes.items():
        setattr(turn, field, value)
    with _reporting_conflicts(turn.session_id, None):
        await session.flush()
    return turn


async def transition_turn(
    session: AsyncSession,
    turn_id: uuid.UUID,
    *,
    from_statuses: Iterable[str],
    to_status: str,
    **changes: Unpack[TransitionChanges],
) -> Turn | None:
    """Move the turn to `to_status` (and set `changes`) only if it is in one of `from_statuses`.

    One compare-and-set UPDATE: None means the turn is not (or no longer) in those statuses,
    or does not exist; nothing was changed then. A copy of the turn this session already
    holds is refreshed. Raises `ActiveTurnExists` when the move would make a second active
    turn in its session, `DuplicateIdempotencyKey` when the new key is taken.
    """
    expected = _status_list(from_statuses)
    session_id = await _session_id_of(session, turn_id)
    if session_id is None:
        return None
    statement = (
        update(Turn)
        .where(Turn.id == turn_id, Turn.status.in_(expected))
        .values(status=to_status, **changes)
        .returning(Turn)
        .execution_options(**_REFRESH_RETURNED)
    )
    with _reporting_conflicts(session_id, changes.get("idempotency_key")):
        return (await session.scalars(statement)).one_or_none()


async def finish_turn(
    session: AsyncSession,
    turn_id: uuid.UUID,
    *,
    from_statuses: Iterable[str],
    to_status: str,
    runner_id: str | None = None,
    **changes: Unpack[_TurnOutcome],
) -> Turn | None:
    """End the turn: `to_status`, `changes`, and the next event number for its terminal event.

    A compare-and-set like `transition_turn` (and, with `runner_id`, only while that runner
    holds the turn); None means nothing changed. The returned turn's `last_event_seq` is the
    number the caller must give the terminal event, in this same transaction.
    """
    conditions = [Turn.id == turn_id, Turn.status.in_(_status_list(from_statuses))]
    if runner_id is not None:
        conditions.append(Turn.runner_id == runner_id)
    statement = (
        update(Turn)
        .where(*conditions)
        .values(status=to_status, last_event_seq=Turn.last_event_seq + 1, **changes)
        .returning(Turn)
        .execution_options(**_REFRESH_RETURNED)
    )
    return (await session.scalars(statement)).one_or_none()


async def take_event_numbers(
    session: AsyncSession,
    turn_id: uuid.UUID,
    count: int,
    *,
    runner_id: str | None = None,
    cursor: str | None = None,
) -> int:
    """Reserve `count` event numbers for an active turn; returns the first of them (and sets
    its `resume_cursor` to `cursor`, when given).

    One UPDATE of `last_event_seq`, which on PostgreSQL also locks the row until commit, so
    concurrent writers get consecutive, disjoint ranges. Raises `TurnNotWritable` when the
    turn has ended (its terminal event is the last) or, with `runner_id`, another runner
    holds it.
    """
    conditions = [Turn.id == turn_id, Turn.status.in_(list(ACTIVE_TURN_STATUSES))]
    if runner_id is not None:
        conditions.append(Turn.runner_id == runner_id)
    values: dict[str, Any] = {"last_event_seq": Turn.last_event_seq + count}
    if cursor is not None:
        values["resume_cursor"] = cursor
    statement = (
        update(Turn)
        .where(*conditions)
        .values(**values)
        .returning(Turn.last_event_seq)
        .execution_options(synchronize_session=False)
    )
    last = (await session.execute(statement)).scalar_one_or_none()
    if last is None:
        raise TurnNotWritable(turn_id)
    held = session.identity_map.get(util.identity_key(Turn, turn_id))
    if held is not None:
        attributes.set_committed_value(held, "last_event_seq", last)
    return int(last) - count + 1


async def mark_prompt_sent(
    session: AsyncSession, turn_id: uuid.UUID, runner_id: str
) -> Turn | Literal["cancelled", "gone"]:
    """Record that the prompt goes to Paseo now, only while the turn runs under `runner_id`
    and nobody asked to cancel it; returns the turn as it is now.

    `cancelled`: a cancel is stored (by any process); `gone`: the turn ended (replaced) or
    another runner holds it. Either way, do not send the prompt.
    """
    statement = (
        update(Turn)
        .where(
            Turn.id == turn_id,
            Turn.status == TurnStatus.RUNNING,
            Turn.runner_id == runner_id,
            Turn.cancel_requested_at.is_(None),
        )
        .values(prompt_sent_at=func.coalesce(Turn.prompt_sent_at, utcnow()))
        .returning(Turn)
        .execution_options(**_REFRESH_RETURNED)
    )
    sent = (await session.scalars(statement)).one_or_none()
    if sent is not None:
        return sent
    current = await get_turn(session, turn_id)
    if (
        current is not None
        and current.status == TurnStatus.RUNNING
        and current.runner_id == runner_id
        and current.cancel_requested_at is not None
    ):
        return "cancelled"
    return "gone"


async def mark_prompt_delivered(session: AsyncSession, turn_id: uuid.UUID) -> None:
    """Record that Paseo has the prompt (a fact, whatever the turn's status is now)."""
    now = utcnow()
    statement = (
        update(Turn)
        .where(Turn.id == turn_id)
        .values(
            prompt_sent_at=func.coalesce(Turn.prompt_sent_at, now),
            prompt_delivered_at=func.coalesce(Turn.prompt_delivered_at, now),
        )
        .execution_options(synchronize_session=False)
    )
    await session.execute(statement)


async def mark_cancelling(session: AsyncSession, turn_id: uuid.UUID) -> bool:
    """Record, once, that the stream says a requested stop is unconfirmed; True the first time
    (for an active turn): the caller then stores the `turn.cancelling` event."""
    statement = (
        update(Turn)
        .where(
            Turn.id == turn_id,
            Turn.status.in_(list(ACTIVE_TURN_STATUSES)),
            Turn.cancelling_at.is_(None),
        )
        .values(cancelling_at=utcnow())
        .returning(Turn.id)
        .execution_options(synchronize_session=False)
    )
    return (await session.scalar(statement)) is not None


async def request_cancel(session: AsyncSession, turn_id: uuid.UUID) -> Turn | None:
    """Store a cancel request on an active turn; the first request's time is kept (it starts
    the one deadline every party of the cancel uses). None if the turn is not active."""
    statement = (
        update(Turn)
        .where(Turn.id == turn_id, Turn.status.in_(list(ACTIVE_TURN_STATUSES)))
        .values(cancel_requested_at=func.coalesce(Turn.cancel_requested_at, utcnow()))
        .returning(Turn)
        .execution_options(**_REFRESH_RETURNED)
    )
    return (await session.scalars(statement)).one_or_none()


async def let_go(session: AsyncSession, turn_id: uuid.UUID, runner_id: str) -> None:
    """`runner_id` no longer follows the turn, whatever its status: an active one can be
    claimed at once, and a turn that replaced it need not wait for this runner."""
    statement = (
        update(Turn)
        .where(Turn.id == turn_id, Turn.runner_id == runner_id)
        .values(runner_id=None, heartbeat_at=None)
        .execution_options(synchronize_session="fetch")
    )
    await session.execute(statement)


async def delivered_prompts_before(
    session: AsyncSession, session_id: uuid.UUID, number: int
) -> list[str]:
    """The prompts of the session's turns before `number` that Paseo is known to have."""
    statement = select(Turn.prompt).where(
        Turn.session_id == session_id,
        Turn.number < number,
        Turn.prompt_delivered_at.is_not(None),
    )
    return list((await session.scalars(statement)).all())


async def any_prompt_sent_before(session: AsyncSession, session_id: uuid.UUID, number: int) -> bool:
    """Whether an earlier turn of the session got as far as sending its prompt to Paseo."""
    statement = select(
        exists().where(
            Turn.session_id == session_id,
            Turn.number < number,
            Turn.prompt_sent_at.is_not(None),
        )
    )
    return bool(await session.scalar(statement))


async def heartbeat_turns(
    session: AsyncSession, runner_id: str, turn_ids: Sequence[uuid.UUID]
) -> int:
    """Stamp `heartbeat_at` now on those of `turn_ids` still active and run by `runner_id`.

    Returns how many were stamped: fewer than asked means another runner took some over
    or they ended.
    """
    if not turn_ids:
        return 0
    statement = (
        update(Turn)
        .where(
            Turn.id.in_(list(turn_ids)),
            Turn.runner_id == runner_id,
            Turn.status.in_(ACTIVE_TURN_STATUSES),
        )
        .values(heartbeat_at=utcnow())
        .returning(Turn.id)
        # RETURNING tells which rows matched: the copies this session holds get the new value.
        .execution_options(synchronize_session="fetch")
    )
    return len((await session.scalars(statement)).all())


async def claim_stale_turns(
    session: AsyncSession,
    runner_id: str,
    *,
    stale_before: datetime,
    statuses: Iterable[str] = ACTIVE_TURN_STATUSES,
) -> list[Turn]:
    """Take over the turns in `statuses` whose heartbeat is missing or older than `stale_before`.

    They get `runner_id` and a fresh heartbeat; turns `runner_id` already runs are left out.
    Returned oldest first. One UPDATE: on PostgreSQL its candidates are locked with SKIP
    LOCKED, so runners claiming at once split the turns and never both get one (and never
    wait); SQLite has a single writer, so a second claimer waits and then finds them fresh.
    """
    stale = (
        Turn.status.in_(_status_list(statuses)),
        or_(Turn.heartbeat_at.is_(None), Turn.heartbeat_at < stale_before),
        or_(Turn.runner_id.is_(None), Turn.runner_id != runner_id),
    )
    # Not a CTE: SQLite's driver opens no transaction for a statement that starts with WITH,
    # so the UPDATE would commit at once, whatever the caller does next.
    candidates = select(Turn.id).where(*stale).with_for_update(skip_locked=True)
    statement = (
        update(Turn)
        # The conditions again: a row another claimer changed meanwhile is checked afresh.
        .where(Turn.id.in_(candidates), *stale)
        .values(runner_id=runner_id, heartbeat_at=utcnow())
        .returning(Turn)
        .execution_options(**_REFRESH_RETURNED)
    )
    claimed = (await session.scalars(statement)).all()
    return sorted(claimed, key=lambda turn: (turn.started_at, turn.number))


async def lock_session_row(session: AsyncSession, session_id: uuid.UUID) -> None:
    """Serialize what changes a session's turns (see app/repositories/locks.py).

    FOR NO KEY UPDATE, not FOR UPDATE: a turn writer's second UPDATE of its own turn row in
    one transaction re-checks the turn's foreign key (KEY SHARE on the session). Under FOR
    UPDATE that check waited for a prompt holding this lock while the prompt waited for the
    writer's turn row: a deadlock (mode=interrupt during a stream).
    """
    await lock_row(
        session, GatewaySession.id, session_id, touch=GatewaySession.status, key_share=True
    )


async def lock_session(session: AsyncSession, session_id: uuid.UUID) -> GatewaySession | None:
    """The session, locked as `lock_session_row` locks it and read in the same statement;
    None if there is none. Call it first in the transaction."""
    return await lock_and_read_row(
        session,
        GatewaySession,
        GatewaySession.id,
        session_id,
        touch=GatewaySession.status,
        key_share=True,
    )


def _status_list(statuses: Iterable[str]) -> list[str]:
    """`statuses` as a list; one status alone (a str, so iterable too) is refused."""
    if isinstance(statuses, str):
        raise TypeError(f"pass a collection of statuses, not the single status {statuses!r}")
    return list(statuses)


def _has_key(session_id: uuid.UUID, key: str) -> ColumnElement[bool]:
    return and_(Turn.session_id == session_id, Turn.idempotency_key == key)


def _bound(values: Mapping[str, Any]) -> list[Label[Any]]:
    """`values` as typed bound parameters named like their turns columns (INSERT ... SELECT)."""
    columns = Turn.__table__.c
    return [literal(value, columns[name].type).label(name) for name, value in values.items()]


async def _session_id_of(session: AsyncSession, turn_id: uuid.UUID) -> uuid.UUID | None:
    """The turn's session (it never changes), read before a statement that may fail."""
    return await session.scalar(select(Turn.session_id).where(Turn.id == turn_id))


@contextmanager
def _reporting_conflicts(session_id: uuid.UUID, idempotency_key: str | None) -> Iterator[None]:
    """Turn a violation of the turns' unique indexes into `ActiveTurnExists` and
    `DuplicateIdempotencyKey`; any other IntegrityError passes through."""
    try:
        yield
    except IntegrityError as exc:
        if violates_unique(exc, ACTIVE_TURN_INDEX, _SQLITE_ACTIVE_TURN_VIOLATION):
            raise ActiveTurnExists(session_id) from exc
        if idempotency_key is not None and violates_unique(
            exc, IDEMPOTENCY_KEY_INDEX, _SQLITE_IDEMPOTENCY_KEY_VIOLATION
        ):
            raise DuplicateIdempotencyKey(session_id, idempotency_key) from exc
        raise


def violates_unique(exc: IntegrityError, name: str, sqlite_message: str) -> bool:
    """Whether the failed statement hit the unique index or constraint `name`.

    PostgreSQL names it: asyncpg's UniqueViolationError (the cause of SQLAlchemy's adapted
    error) carries `constraint_name`. SQLite names only its columns, in `sqlite_message`.
    """
    driver_error = exc.orig
    for error in (driver_error, getattr(driver_error, "__cause__", None)):
        if getattr(error, "constraint_name", None) == name:
            return True
    return str(driver_error) == sqlite_message
