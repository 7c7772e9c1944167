"""SQL for the `sessions` table. Functions only flush: the caller owns the transaction.

A session may have an owner, the API key that made it (`owner_key_id`). Listing and counting
take an owner filter: a key's id (that key's sessions), None (sessions without an owner), or
`ANY_OWNER`, the default (no filter).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal, TypeAlias, TypedDict, TypeVar, Unpack

from sqlalchemy import ColumnElement, Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ACTIVE_TURN_STATUSES, GatewaySession, SessionStatus, Turn, WebhookEvent
from app.paseo.daemon_config import DEFAULT_DAEMON
from app.repositories import outbox

_Select = TypeVar("_Select", bound=Select[*tuple[Any, ...]])


class AnyOwner(enum.Enum):
    """The type of `ANY_OWNER` (a one-member enum, so type checkers can tell it apart)."""

    ANY_OWNER = "any owner"


ANY_OWNER = AnyOwner.ANY_OWNER
# Whose sessions to list: that key's, those without an owner (None), or everyone's.
OwnerFilter: TypeAlias = uuid.UUID | Literal[AnyOwner.ANY_OWNER] | None


class SessionChanges(TypedDict, total=False):
    """What `update_session` may change; a key left out stays as it is."""

    status: str
    agent_id: str | None
    title: str | None
    labels: dict[str, str]
    mode: str | None
    cwd: str
    provider: str
    last_active_at: datetime
    owner_key_id: uuid.UUID | None


async def add_session(
    session: AsyncSession,
    *,
    provider: str,
    cwd: str,
    id: uuid.UUID | None = None,
    agent_id: str | None = None,
    model: str | None = None,
    mode: str | None = None,
    title: str | None = None,
    labels: Mapping[str, str] | None = None,
    status: str = SessionStatus.PENDING,
    owner_key_id: uuid.UUID | None = None,
    daemon: str = DEFAULT_DAEMON,
) -> GatewaySession:
    """Insert a session; a new id and the creation times are filled in. Webhooks that hear
    `session.created` get it in the same transaction.

    An `owner_key_id` that is no API key's is refused with IntegrityError.
    """
    record = GatewaySession(
        id=id or uuid.uuid4(),
        agent_id=agent_id,
        provider=provider,
        model=model,
        mode=mode,
        title=title,
        cwd=cwd,
        labels=dict(labels or {}),
        status=status,
        owner_key_id=owner_key_id,
        daemon=daemon,
    )
    session.add(record)
    await session.flush()
    await outbox.announce_session_event(session, record, WebhookEvent.SESSION_CREATED)
    return record


async def get_session(session: AsyncSession, session_id: uuid.UUID) -> GatewaySession | None:
    return await session.get(GatewaySession, session_id)


async def get_session_by_agent_id(session: AsyncSession, agent_id: str) -> GatewaySession | None:
    statement = select(GatewaySession).where(GatewaySession.agent_id == agent_id)
    return await session.scalar(statement)


async def list_sessions(
    session: AsyncSession,
    *,
    status: str | None = None,
    labels: Mapping[str, str] | None = None,
    limit: int = 50,
    offset: int = 0,
    owner_key_id: OwnerFilter = ANY_OWNER,
) -> tuple[list[GatewaySession], int]:
    """One page, newest first, and how many match in all; every given label must match.

    One statement: each row carries the total (`count(*) OVER ()`); only a page past the end,
    which has no rows to carry it, costs a second one.
    """
    check_page(limit, offset)
    statement = (
        _filtered(
            select(GatewaySession, func.count().over()),
            status=status,
            labels=labels,
            owner=owner_key_id,
        )
        .order_by(GatewaySession.created_at.desc(), GatewaySession.id.desc())
        .limit(limit)
        .offset(offset)
    )
    rows = (await session.execute(statement)).all()
    if not rows:
        total = await count_sessions(
            session, status=status, labels=labels, owner_key_id=owner_key_id
        )
        return [], total
    return [record for record, _ in rows], rows[0][1]


async def count_sessions(
    session: AsyncSession,
    *,
    status: str | None = None,
    labels: Mapping[str, str] | None = None,
    owner_key_id: OwnerFilter = ANY_OWNER,
) -> int:
    statement = _filtered(
        select(func.count(GatewaySession.id)), status=status, labels=labels, owner=owner_key_id
    )
    return (await session.scalar(statement)) or 0


async def agent_ids_of_owner(session: AsyncSession, owner_key_id: uuid.UUID) -> set[str]:
    """The Paseo agents of the key's sessions (those that have one yet)."""
    statement = select(GatewaySession.agent_id).where(
        GatewaySession.owner_key_id == owner_key_id, GatewaySession.agent_id.is_not(None)
    )
    return {agent_id for agent_id in (await session.scalars(statement)).all() if agent_id}


async def active_turns_by_daemon(session: AsyncSession) -> dict[str, int]:
    """How many turns are active (queued, running, waiting) on each daemon, across every
    gateway process; a daemon with none is left out."""
    statement = (
        select(GatewaySession.daemon, func.count(Turn.id))
        .join(Turn, Turn.session_id == GatewaySession.id)
        .where(Turn.status.in_([str(status) for status in ACTIVE_TURN_STATUSES]))
        .group_by(GatewaySession.daemon)
    )
    return {daemon: count for daemon, count in (await session.execute(statement)).all()}


async def daemons_of_sessions(
    session: AsyncSession, session_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The daemon each of `session_ids` is pinned to."""
    ids = list(session_ids)
    if not ids:
        return {}
    statement = select(GatewaySession.id, GatewaySession.daemon).where(GatewaySession.id.in_(ids))
    return {id_: daemon for id_, daemon in (await session.execute(statement)).all()}


async def update_session(
    session: AsyncSession, record: GatewaySession, **changes: Unpack[SessionChanges]
) -> GatewaySession:
    """Set the given fields on `record` and flush them; a close is announced to webhooks.

    `record` may come from an earlier, closed session: it joins this one.
    """
    if record not in session:
        session.add(record)
    closing = (
        changes.get("status") == SessionStatus.CLOSED and record.status != SessionStatus.CLOSED
    )
    for field, value in changes.items():
        setattr(record, field, value)
    await session.flush()
    if closing:
        await outbox.announce_session_event(session, record, WebhookEvent.SESSION_CLOSED)
    return record


async def set_last_active(
    session: AsyncSession, session_id: uuid.UUID, last_active_at: datetime
) -> None:
    """One UPDATE: the session was active at `last_active_at` (its turn just ended)."""
    statement = (
        update(GatewaySession)
        .where(GatewaySession.id == session_id)
        .values(last_active_at=last_active_at)
        .execution_options(synchronize_session=False)
    )
    await session.execute(statement)


def check_page(limit: int, offset: int) -> None:
    """Refuse what SQLite and PostgreSQL would read differently (SQLite: negative = no limit)."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    if offset < 0:
        raise ValueError(f"offset must not be negative, not {offset}")


def label_matches(key: str, value: str) -> ColumnElement[bool]:
    """`labels[key] == value` as text: JSON_EXTRACT on SQLite, `->>` on PostgreSQL.

    SQLite reads the key as a quoted JSON path with no escape for '"', so such a key is
    refused on every backend rather than answered differently on one.
    """
    if '"' in key:
        raise ValueError(f"a label key to filter on may not contain '\"': {key!r}")
    labelled: ColumnElement[str] = GatewaySession.labels[key].as_string()
    return labelled == value


def _filtered(
    statement: _Select,
    *,
    status: str | None,
    labels: Mapping[str, str] | None,
    owner: OwnerFilter,
) -> _Select:
    if status is not None:
        statement = statement.where(GatewaySession.status == status)
    if owner is not ANY_OWNER:
        # `== None` renders IS NULL: sessions without an owner.
        statement = statement.where(GatewaySession.owner_key_id == owner)
    for key, value in (labels or {}).items():
        statement = statement.where(label_matches(key, value))
    return statement
