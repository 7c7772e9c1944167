"""SQL for `audit_records`. Functions only flush: the caller owns the transaction (the one
that makes the change the record is about)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import AuditRecord


@dataclass(frozen=True)
class AuditFilter:
    """Which records to list; None: any."""

    key_id: uuid.UUID | None = None
    action: str | None = None
    session_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None


async def add_record(session: AsyncSession, record: AuditRecord) -> None:
    session.add(record)
    await session.flush()


async def delete_record(session: AsyncSession, record_id: uuid.UUID) -> None:
    await session.execute(delete(AuditRecord).where(AuditRecord.id == record_id))


async def list_records(
    session: AsyncSession, matching: AuditFilter, *, limit: int, offset: int
) -> tuple[list[AuditRecord], int]:
    """A page of the records that match, newest first, and how many match in all."""
    conditions = _conditions(matching)
    total = await session.scalar(select(func.count(AuditRecord.id)).where(*conditions))
    statement = select(AuditRecord).where(*conditions)
    statement = statement.order_by(AuditRecord.at.desc(), AuditRecord.id).limit(limit)
    rows = (await session.scalars(statement.offset(offset))).all()
    return list(rows), total or 0


def _conditions(matching: AuditFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if matching.key_id is not None:
        conditions.append(AuditRecord.key_id == matching.key_id)
    if matching.action is not None:
        conditions.append(AuditRecord.action == matching.action)
    if matching.session_id is not None:
        conditions.append(AuditRecord.session_id == matching.session_id)
    if matching.since is not None:
        conditions.append(AuditRecord.at >= matching.since)
    if matching.until is not None:
        conditions.append(AuditRecord.at < matching.until)
    return conditions


async def delete_before(session: AsyncSession, before: datetime) -> int:
    """Delete the records older than `before`; how many went."""
    result = await session.execute(delete(AuditRecord).where(AuditRecord.at < before))
    return int(result.rowcount)  # type: ignore[attr-defined]
