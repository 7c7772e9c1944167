"""SQL for telling gateway processes that a turn has new stored events.

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

CHANNEL = "paseo_turn_events"
# Turns per `stored_heads` query (keeps the IN list well under any bound-parameter limit).
_HEADS_CHUNK = 500


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
