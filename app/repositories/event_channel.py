"""SQL for telling gateway processes that a turn has new stored events, and for storing events
that were numbered (and shown live) before they were stored.

PostgreSQL: a writer sends `NOTIFY paseo_turn_events, '<turn id>:<highest seq>'` in the
transaction that stores the events, so the notice goes out exactly when they are visible; each
gateway process LISTENs on one connection of its own. SQLite has no NOTIFY (and one process):
`notify_stored` is a no-op there and readers rely on in-process wake-ups plus a cheap re-check
of `stored_heads`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import func, make_url, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import TurnEventRecord
from app.repositories import turn_events as events_repo
from app.repositories.turn_events import EventRow
from app.repositories.turns import take_event_numbers

CHANNEL = "paseo_turn_events"
# Turns per `stored_heads` query (keeps the IN list well under any bound-parameter limit).
_HEADS_CHUNK = 500


class EventsOutOfOrder(Exception):
    """A higher-numbered event of the turn is stored already: storing these now would let a
    reader that follows the stored events by number skip them, so they are not stored."""

    def __init__(self, turn_id: uuid.UUID, head: int, first: int) -> None:
        super().__init__(f"turn {turn_id} has event {head} stored; {first} comes too late")
        self.turn_id = turn_id


async def store_numbered_events(
    session: AsyncSession,
    turn_id: uuid.UUID,
    events: Sequence[EventRow],
    *,
    runner_id: str | None,
    cursor: str | None = None,
) -> None:
    """Store events whose numbers `take_event_numbers` gave out earlier, in the caller's
    transaction, only while the turn is active (and, with `runner_id`, held by it), and only
    above every stored one; `cursor` (the transport's, after the last of them) with them.

    The turn row is locked first (every writer of the turn locks it), so the check that no
    higher number is stored is exact: stored events become visible in number order.
    Raises `TurnNotWritable` (ended or taken over) or `EventsOutOfOrder`; nothing is stored then.
    """
    if not events:
        return
    await take_event_numbers(session, turn_id, 0, runner_id=runner_id)  # lock and check
    head = await events_repo.last_seq(session, turn_id)
    first = min(seq for seq, _, _ in events)
    if head >= first:
        raise EventsOutOfOrder(turn_id, head, first)
    await events_repo.append_events(session, turn_id, events, cursor=cursor)


async def notify_stored(session: AsyncSession, turn_id: uuid.UUID, seq: int) -> None:
    """Tell every listening process, when this transaction commits, that the turn's events up
    to `seq` are stored (PostgreSQL only)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    await session.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": CHANNEL, "payload": f"{turn_id}:{seq}"},
    )


def parse_notice(payload: str) -> tuple[uuid.UUID, int] | None:
    """`<turn id>:<seq>` as sent by `notify_stored`; None for anything else."""
    turn_id, _, seq = payload.partition(":")
    try:
        return uuid.UUID(turn_id), int(seq)
    except ValueError:
        return None


async def stored_heads(
    session: AsyncSession, turn_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    """The highest stored event number of each turn that has events (one query per 500)."""
    heads: dict[uuid.UUID, int] = {}
    for start in range(0, len(turn_ids), _HEADS_CHUNK):
        chunk = list(turn_ids[start : start + _HEADS_CHUNK])
        statement = (
            select(TurnEventRecord.turn_id, func.max(TurnEventRecord.seq))
            .where(TurnEventRecord.turn_id.in_(chunk))
            .group_by(TurnEventRecord.turn_id)
        )
        for turn_id, seq in (await session.execute(statement)).all():
            heads[turn_id] = int(seq)
    return heads


def supports_listen(database_url: str) -> bool:
    return make_url(database_url).get_backend_name() == "postgresql"


async def listen(
    database_url: str, on_notice: Callable[[str], None], on_lost: Callable[[], None]
) -> asyncpg.Connection:
    """A connection of its own (not from the pool) that LISTENs on the channel; `on_notice`
    gets each payload, `on_lost` is called when the connection ends."""
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        connection.add_termination_listener(lambda _connection: on_lost())
        await connection.add_listener(CHANNEL, lambda *args: on_notice(str(args[-1])))
    except BaseException:
        await connection.close()
        raise
    return connection


async def ping(connection: asyncpg.Connection) -> None:
    """Raise if the listening connection no longer answers."""
    await connection.fetchval("SELECT 1")
