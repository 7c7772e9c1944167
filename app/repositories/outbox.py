"""The webhook outbox, written where the event itself is stored: an event and its deliveries
commit together or not at all. Functions only flush: the caller owns the transaction.

Which webhooks hear an event is decided here, in one query: those that want it, are enabled,
whose key is not revoked, and that see the session (their key made it, or they see all).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    ApiKey,
    DeliveryStatus,
    GatewaySession,
    Turn,
    Webhook,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
    utcnow,
)

WEBHOOK_EVENTS = frozenset(str(event) for event in WebhookEvent)


async def announce_turn_events(
    session: AsyncSession,
    turn_id: uuid.UUID,
    events: Sequence[tuple[str, dict[str, Any]]],
    occurred_at: datetime,
) -> int:
    """Queue a delivery of each of `events` (name, data) that is a webhook event, to every
    webhook that hears it; returns how many were queued. Others cost nothing."""
    wanted = [(name, data) for name, data in events if name in WEBHOOK_EVENTS]
    if not wanted:
        return 0
    statement = (
        select(Webhook.id, WebhookSubscription.event, GatewaySession.id)
        .select_from(Webhook)
        .join(WebhookSubscription, WebhookSubscription.webhook_id == Webhook.id)
        .join(Turn, Turn.id == turn_id)
        .join(GatewaySession, GatewaySession.id == Turn.session_id)
        .outerjoin(ApiKey, ApiKey.id == Webhook.owner_key_id)
        .where(
            WebhookSubscription.event.in_({name for name, _ in wanted}),
            *_hears(GatewaySession.owner_key_id),
        )
    )
    matches = (await session.execute(statement)).all()
    rows = [
        _delivery(webhook_id, name, data, occurred_at, session_id=session_id, turn_id=turn_id)
        for name, data in wanted
        for webhook_id, event, session_id in matches
        if event == name
    ]
    return await _insert_deliveries(session, rows)


async def announce_session_event(
    session: AsyncSession, record: GatewaySession, event: WebhookEvent
) -> int:
    """Queue `event` about `record` (as it is now) for every webhook that hears it."""
    statement = (
        select(Webhook.id)
        .join(WebhookSubscription, WebhookSubscription.webhook_id == Webhook.id)
        .outerjoin(ApiKey, ApiKey.id == Webhook.owner_key_id)
        .where(WebhookSubscription.event == str(event), *_hears(record.owner_key_id))
    )
    webhook_ids = (await session.scalars(statement)).all()
    data = {
        "title": record.title,
        "provider": record.provider,
        "model": record.model,
        "mode": record.mode,
        "cwd": record.cwd,
        "labels": dict(record.labels or {}),
        "status": record.status,
        "daemon": record.daemon,
        "agent_id": record.agent_id,
    }
    rows = [
        _delivery(webhook_id, str(event), data, utcnow(), session_id=record.id, turn_id=None)
        for webhook_id in webhook_ids
    ]
    return await _insert_deliveries(session, rows)


def _hears(session_owner: Any) -> list[Any]:
    """Enabled, its key (if any) not revoked, and it sees the session."""
    return [
        Webhook.enabled.is_(True),
        or_(Webhook.owner_key_id.is_(None), ApiKey.revoked_at.is_(None)),
        or_(Webhook.sees_all.is_(True), Webhook.owner_key_id == session_owner),
    ]


def _delivery(
    webhook_id: uuid.UUID,
    event: str,
    data: dict[str, Any],
    occurred_at: datetime,
    *,
    session_id: uuid.UUID | None,
    turn_id: uuid.UUID | None,
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "webhook_id": webhook_id,
        "event": event,
        "session_id": session_id,
        "turn_id": turn_id,
        "data": data,
        "occurred_at": occurred_at,
        "status": DeliveryStatus.PENDING,
        "attempts": 0,
        "next_attempt_at": occurred_at,
        "created_at": occurred_at,
    }


async def _insert_deliveries(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    if rows:
        await session.execute(insert(WebhookDelivery).values(rows))
    return len(rows)
