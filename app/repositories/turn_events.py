"""SQL for the `turn_events` table. Functions only flush: the caller owns the transaction.

A turn's events are numbered 1, 2, ... (`seq`), so a reader can resume after the last one it
saw; `turns.last_event_seq` keeps the highest stored. A number is used once per turn:
`DuplicateEventSeq` reports a second use. After it, write nothing more in the transaction
(PostgreSQL has aborted it): leave the `Database.session()` block.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import case, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import attributes, util

from app.models import Turn, TurnEventRecord, utcnow
from app.repositories import outbox
from app.repositories.turns import take_event_numbers, violates_unique

EVENT_SEQ_CONSTRAINT = "uq_turn_events_turn_id_seq"
_SQLITE_EVENT_SEQ_VIOLATION = "UNIQUE constraint failed: turn_events.turn_id, turn_events.seq"
# Rows per INSERT: 4 bound values each stays well under SQLite's and asyncpg's 32,767 limit.
MAX_EVENTS_PER_INSERT = 1000

# What `append_events` takes: (seq, name, data).
EventRow = tuple[int, str, dict[str, Any]]


class DuplicateEventSeq(Exception):
    """The turn already has an event with one of these numbers."""

    def __init__(self, turn_id: uuid.UUID, seqs: Sequence[int]) -> None:
        super().__init__(
            f"turn {turn_id} already has an event numbered in {min(seqs)}..{max(seqs)}"
        )
        self.turn_id = turn_id
        self.seqs = tuple(seqs)


async def append_events(
    session: AsyncSession,
    turn_id: uuid.UUID,
    events: Sequence[EventRow],
    *,
    cursor: str | None = None,
) -> None:
    """Store `events` in one multi-row INSERT, and raise the turn's `last_event_seq` to match
    (setting its `resume_cursor` to `cursor`, when given, in the same UPDATE).

    Raises `DuplicateEventSeq` when a number is taken (or given twice), ValueError for a
    number below 1, and IntegrityError when there is no such turn.
    """
    if not events:
        return
    seqs = [seq for seq, _, _ in events]
    if min(seqs) < 1:
        raise ValueError(f"event numbers start at 1, not {min(seqs)}")
    await _insert_events(session, turn_id, events)
    await _raise_last_event_seq(session, turn_id, max(seqs), cursor)


async def _insert_events(
    session: AsyncSession, turn_id: uuid.UUID, events: Sequence[EventRow]
) -> None:
    seqs = [seq for seq, _, _ in events]
    created_at = utcnow()
    rows = [
        {"turn_id": turn_id, "seq": seq, "name": name, "data": data, "created_at": created_at}
        for seq, name, data in events
    ]
    with _reporting_duplicate_seq(turn_id, seqs):
        for start in range(0, len(rows), MAX_EVENTS_PER_INSERT):
            chunk = rows[start : start + MAX_EVENTS_PER_INSERT]
            await session.execute(insert(TurnEventRecord).values(chunk))
    named = [(name, data) for _, name, data in events]
    await outbox.announce_turn_events(session, turn_id, named, created_at)


async def append_next_events(
    session: AsyncSession,
    turn_id: uuid.UUID,
    events: Sequence[tuple[str, dict[str, Any]]],
    *,
    runner_id: str | None = None,
    cursor: str | None = None,
) -> list[int]:
    """Store `events` under the turn's next numbers (taken from the turn row, which stays
    locked until the caller commits, so writers' numbers and commits come in the same order);
    returns them. `cursor`, the transport's resume point after the last, is set on the turn.

    Raises `app.repositories.turns.TurnNotWritable` when the turn has ended or, with
    `runner_id`, another runner holds it: nothing is stored after a terminal event.
    """
    if not events:
        return []
    first = await take_event_numbers(
        session, turn_id, len(events), runner_id=runner_id, cursor=cursor
    )
    numbered = [(first + index, name, data) for index, (name, data) in enumerate(events)]
    await _insert_events(session, turn_id, numbered)
    return [seq for seq, _, _ in numbered]


async def add_first_events(
    session: AsyncSession, turn: Turn, events: Sequence[tuple[str, dict[str, Any]]]
) -> list[int]:
    """Store the first events of a turn this transaction has just inserted, numbered 1, 2, ...
    (returned), in one INSERT: the turn was inserted with `last_event_seq` counting them
    (`turns.add_turn`), and nobody else can see it before the commit, so its row is not
    touched again."""
    if turn.last_event_seq != len(events):
        raise ValueError(
            f"turn {turn.id} was inserted with last_event_seq={turn.last_event_seq}, "
            f"not with the {len(events)} event(s) given"
        )
    if not events:
        return []
    numbered = [(index, name, data) for index, (name, data) in enumerate(events, start=1)]
    await _insert_events(session, turn.id, numbered)
    return [seq for seq, _, _ in numbered]


async def list_events(
    session: AsyncSession, turn_id: uuid.UUID, *, after_seq: int = 0, limit: int = 1000
) -> list[TurnEventRecord]:
    """The turn's events numbered above `after_seq`, in order, at most `limit` of them."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    statement = (
        select(TurnEventRecord)
        .where(TurnEventRecord.turn_id == turn_id, TurnEventRecord.seq > after_seq)
        .order_by(TurnEventRecord.seq)
        .limit(limit)
    )
    return list((await session.scalars(statement)).all())


async def text_deltas(session: AsyncSession, turn_id: uuid.UUID) -> list[str]:
    """The `delta` of each of the turn's `text` events, in order."""
    statement = (
        select(TurnEventRecord.data)
        .where(TurnEventRecord.turn_id == turn_id, TurnEventRecord.name == "text")
        .order_by(TurnEventRecord.seq)
    )
    return [str((data or {}).get("delta", "")) for data in (await session.scalars(statement))]


async def events_named(
    session: AsyncSession, turn_id: uuid.UUID, names: Collection[str]
) -> list[TurnEventRecord]:
    """Every stored event of the turn with one of `names`, in order."""
    statement = (
        select(TurnEventRecord)
        .where(TurnEventRecord.turn_id == turn_id, TurnEventRecord.name.in_(list(names)))
        .order_by(TurnEventRecord.seq)
    )
    return list((await session.scalars(statement)).all())


async def has_event_named(
    session: AsyncSession, turn_id: uuid.UUID, names: Collection[str], *, up_to_seq: int
) -> bool:
    """Whether one of the turn's events numbered `up_to_seq` or lower is named in `names`."""
    statement = select(
        exists().where(
            TurnEventRecord.turn_id == turn_id,
            TurnEventRecord.seq <= up_to_seq,
            TurnEventRecord.name.in_(list(names)),
        )
    )
    return bool(await session.scalar(statement))


async def last_seq(session: AsyncSession, turn_id: uuid.UUID) -> int:
    """The highest event number stored for the turn; 0 when it has none."""
    statement = select(func.coalesce(func.max(TurnEventRecord.seq), 0)).where(
        TurnEventRecord.turn_id == turn_id
    )
    return (await session.scalar(statement)) or 0


async def _raise_last_event_seq(
    session: AsyncSession, turn_id: uuid.UUID, seq: int, cursor: str | None = None
) -> None:
    """`last_event_seq = greatest(last_event_seq, seq)`, written as CASE for both backends.

    The new value is set on the copy of the turn this session holds, if any (the ORM cannot
    work out a CASE itself and would expire the attribute, which async code cannot reload).
    """
    greatest = case((Turn.last_event_seq < seq, seq), else_=Turn.last_event_seq)
    values: dict[str, Any] = {"last_event_seq": greatest}
    if cursor is not None:
        values["resume_cursor"] = cursor
    statement = (
        update(Turn)
        .where(Turn.id == turn_id)
        .values(**values)
        .returning(Turn.last_event_seq)
        .execution_options(synchronize_session=False)
    )
    stored = (await session.execute(statement)).scalar_one_or_none()
    held = session.identity_map.get(util.identity_key(Turn, turn_id))
    if stored is not None and held is not None:
        attributes.set_committed_value(held, "last_event_seq", stored)


@contextmanager
def _reporting_duplicate_seq(turn_id: uuid.UUID, seqs: Sequence[int]) -> Iterator[None]:
    try:
        yield
    except IntegrityError as exc:
        if violates_unique(exc, EVENT_SEQ_CONSTRAINT, _SQLITE_EVENT_SEQ_VIOLATION):
            raise DuplicateEventSeq(turn_id, seqs) from exc
        raise
