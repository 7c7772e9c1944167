"""SQL for what turns used: a key's use in its budget windows, and `/usage` rows grouped by
key, session, UTC day or model. Every figure is summed from `turns.usage` (what each turn
recorded when it ended), so the two always agree with the stored turns.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ApiKey, GatewaySession, Turn
from app.repositories.locks import lock_and_read_row
from app.repositories.rate_limits import UnknownKey
from app.repositories.sessions import ANY_OWNER, OwnerFilter

GroupBy = Literal["key", "session", "day", "model"]


@dataclass(frozen=True)
class UsageRow:
    """One group's sums. `group` is the key id, session id, UTC day (YYYY-MM-DD) or
    `provider/model`; `name` the key's name or the session's title, where there is one."""

    group: str | None
    name: str | None
    turns: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: float


@dataclass(frozen=True)
class Used:
    """What a key's turns used in the current UTC day and month."""

    turns_today: int = 0
    output_tokens_today: int = 0
    cost_usd_today: float = 0.0
    cost_usd_month: float = 0.0


async def lock_key_limits(session: AsyncSession, key_id: uuid.UUID) -> dict[str, Any] | None:
    """Lock the key's row until the transaction ends and return its limits (None: none).

    The lock orders every admission of the key, in any process, so a limit read here cannot
    be passed by another prompt admitted at the same instant. Raises `UnknownKey`.
    """
    key = await lock_and_read_row(
        session, ApiKey, ApiKey.id, key_id, touch=ApiKey.name, key_share=True
    )
    if key is None:
        raise UnknownKey(f"no API key {key_id}")
    return key.limits


async def key_limits(session: AsyncSession, key_id: uuid.UUID) -> dict[str, Any] | None:
    """The key's limits as they stand, unlocked (None: none, or no such key)."""
    limits: dict[str, Any] | None = await session.scalar(
        select(ApiKey.limits).where(ApiKey.id == key_id)
    )
    return limits


async def key_used(
    session: AsyncSession, key_id: uuid.UUID, *, day_start: datetime, month_start: datetime
) -> Used:
    """What the key's turns used since `day_start` and since `month_start` (by when each
    started; nothing starts in the future)."""
    today = Turn.started_at >= day_start
    statement = select(
        func.count(case((today, Turn.id))),
        _total(case((today, _tokens("output_tokens")))),
        _total(case((today, _cost()))),
        _total(_cost()),
    ).where(
        Turn.key_id == key_id,
        Turn.started_at >= month_start,
    )
    turns, output_tokens, cost_today, cost_month = (await session.execute(statement)).one()
    return Used(int(turns), int(output_tokens), float(cost_today), float(cost_month))


async def usage_by(
    session: AsyncSession,
    group_by: GroupBy,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    key_id: OwnerFilter = ANY_OWNER,
) -> list[UsageRow]:
    """One row per group of the turns started in [since, until) (of key `key_id`, unless
    ANY_OWNER), ordered by group; turns that reported no usage count as turns with 0 used."""
    group, name = _group_columns(session, group_by)
    statement: Select[Any] = select(
        *group,
        name,
        func.count(Turn.id),
        _total(_tokens("input_tokens")),
        _total(_tokens("output_tokens")),
        _total(_tokens("cached_tokens")),
        _total(_cost()),
    ).select_from(Turn)
    if group_by == "key":
        statement = statement.outerjoin(ApiKey, ApiKey.id == Turn.key_id)
    if group_by in ("session", "model"):
        statement = statement.join(GatewaySession, GatewaySession.id == Turn.session_id)
    if key_id is not ANY_OWNER:
        statement = statement.where(
            Turn.key_id.is_(None) if key_id is None else Turn.key_id == key_id
        )
    if since is not None:
        statement = statement.where(Turn.started_at >= since)
    if until is not None:
        statement = statement.where(Turn.started_at < until)
    statement = statement.group_by(*group, name).order_by(*group)
    rows = (await session.execute(statement)).all()
    return [_usage_row(group_by, row) for row in rows]


def _group_columns(session: AsyncSession, group_by: GroupBy) -> tuple[list[Any], Any]:
    """The columns a group is told by, and the name shown beside it."""
    if group_by == "key":
        return [Turn.key_id], ApiKey.name
    if group_by == "session":
        return [Turn.session_id], GatewaySession.title
    if group_by == "model":
        return [GatewaySession.provider, GatewaySession.model], literal(None)
    return [_utc_day(session)], literal(None)


def _usage_row(group_by: GroupBy, row: Any) -> UsageRow:
    *group, name, turns, input_tokens, output_tokens, cached_tokens, cost = row
    if group_by == "model":
        provider, model = group
        label: str | None = f"{provider}/{model}" if model else provider
    else:
        label = None if group[0] is None else str(group[0])
    return UsageRow(
        label, name, int(turns), int(input_tokens), int(output_tokens), int(cached_tokens), cost
    )


def _utc_day(session: AsyncSession) -> ColumnElement[str]:
    """A turn's UTC start day as YYYY-MM-DD (SQLite stores UTC text; PostgreSQL timestamptz)."""
    if session.get_bind().dialect.name == "sqlite":
        return func.strftime("%Y-%m-%d", Turn.started_at)
    return func.to_char(func.timezone("UTC", Turn.started_at), "YYYY-MM-DD")


def _tokens(name: str) -> ColumnElement[int]:
    tokens: ColumnElement[int] = Turn.usage[name].as_integer()
    return tokens


def _cost() -> ColumnElement[float]:
    cost: ColumnElement[float] = Turn.usage["cost_usd"].as_float()
    return cost


def _total(value: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(value), 0)
