"""The audit trail: who changed what, recorded once, with the change.

A request carries an `AuditContext` (made by the request-id middleware, told the caller's key
once it is known, and the route's action by the route). A service that changes state calls
`record` in the transaction of the change, so the change and its record commit together. A
request refused after its key was known is recorded by `record_refusal`, in a transaction of
its own, with the problem's code as its outcome. Records hold ids and names, never prompt
text or secrets. Work the gateway does on its own (no request) is recorded without a key.
"""

from __future__ import annotations

import contextvars
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database
from app.models import AuditRecord, utcnow
from app.repositories import audit as audit_repo

OK = "ok"


@dataclass
class AuditContext:
    """What a request's records say about it. Mutable, so what the route and its key
    dependency learn reaches the error handler however the context was copied."""

    request_id: str | None
    client: str | None
    key_id: uuid.UUID | None = None
    # Set once the caller's key checked out (None: not yet, or it did not).
    key_name: str | None = None
    action: str | None = None
    # The request's last record (None: none yet, or it was withdrawn with its change).
    last_record_id: uuid.UUID | None = None


_context: contextvars.ContextVar[AuditContext | None] = contextvars.ContextVar(
    "audit_context", default=None
)


def begin_request(request_id: str, client: str | None) -> contextvars.Token[AuditContext | None]:
    return _context.set(AuditContext(request_id, client))


def end_request(token: contextvars.Token[AuditContext | None]) -> None:
    _context.reset(token)


def caller_known(key_id: uuid.UUID | None, key_name: str) -> None:
    """The request's caller, once its key checked out."""
    context = _context.get()
    if context is not None:
        context.key_id, context.key_name = key_id, key_name


def declare_action(action: str) -> None:
    """What the request asks for, named by its route before anything is checked."""
    context = _context.get()
    if context is not None:
        context.action = action


async def record(
    session: AsyncSession,
    action: str,
    *,
    session_id: uuid.UUID | None = None,
    turn_id: uuid.UUID | None = None,
    target_id: str | None = None,
) -> None:
    """Record `action`, done, in the caller's transaction (the one that made the change)."""
    context = _context.get()
    row = _record(context, action, OK, session_id, turn_id, target_id)
    await audit_repo.add_record(session, row)
    if context is not None:
        context.last_record_id = row.id


async def withdraw(session: AsyncSession) -> None:
    """The request's change was undone (Paseo refused it after it was stored): its record
    goes too, in the transaction that undoes it, and the refusal is recorded instead."""
    context = _context.get()
    if context is None or context.last_record_id is None:
        return
    await audit_repo.delete_record(session, context.last_record_id)
    context.last_record_id = None


async def record_refusal(db: Database, outcome: str, *, session_id: uuid.UUID | None) -> None:
    """Record that the request's declared action was refused with `outcome` (a problem
    code): only for a caller whose key checked out, and only if nothing was recorded yet."""
    context = _context.get()
    if context is None or context.action is None or context.key_name is None:
        return
    if context.last_record_id is not None:
        return
    row = _record(context, context.action, outcome, session_id, None, None)
    async with db.session() as session:
        await audit_repo.add_record(session, row)
    context.last_record_id = row.id


async def list_records(
    db: Database, matching: audit_repo.AuditFilter, *, limit: int, offset: int
) -> tuple[list[AuditRecord], int]:
    """A page of the trail, newest first, and how many records match."""
    async with db.read() as session:
        return await audit_repo.list_records(session, matching, limit=limit, offset=offset)


async def prune(db: Database, *, keep_days: float) -> int:
    """Delete records older than `keep_days`; how many went."""
    async with db.session() as session:
        return await audit_repo.delete_before(session, utcnow() - timedelta(days=keep_days))


def _record(
    context: AuditContext | None,
    action: str,
    outcome: str,
    session_id: uuid.UUID | None,
    turn_id: uuid.UUID | None,
    target_id: str | None,
) -> AuditRecord:
    return AuditRecord(
        at=utcnow(),
        key_id=context.key_id if context else None,
        key_name=context.key_name if context else None,
        action=action,
        outcome=outcome,
        session_id=session_id,
        turn_id=turn_id,
        target_id=target_id,
        request_id=context.request_id if context else None,
        client=context.client if context else None,
    )
