"""SQL for webhooks and their outbox. Functions only flush: the caller owns the transaction.

Deliveries are written by app/repositories/outbox.py, with the events they announce.

A worker claims due deliveries by moving them to `sending` with a lease (`next_attempt_at`
moves to the lease's end) in one UPDATE; on PostgreSQL the rows are picked FOR UPDATE SKIP
LOCKED, on SQLite the single writer orders claims. A worker that dies mid-attempt leaves the
delivery to be claimed again when its lease ends. Results are recorded only for the attempt
that was claimed (`attempts` still the same), so a late worker cannot overwrite a newer one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    DeliveryStatus,
    Webhook,
    WebhookDelivery,
    WebhookSubscription,
    utcnow,
)
from app.repositories.sessions import ANY_OWNER, OwnerFilter, check_page

# --- webhooks ------------------------------------------------------------------------------


async def add_webhook(
    session: AsyncSession,
    *,
    owner_key_id: uuid.UUID | None,
    sees_all: bool,
    url: str,
    secret: str,
    events: Iterable[str],
    description: str | None = None,
) -> Webhook:
    now = utcnow()
    record = Webhook(
        id=uuid.uuid4(),
        owner_key_id=owner_key_id,
        sees_all=sees_all,
        url=url,
        secret=secret,
        description=description,
        enabled=True,
        created_at=now,
        updated_at=now,
    )
    session.add(record)
    await session.flush()
    await set_events(session, record.id, events)
    return record


async def set_events(session: AsyncSession, webhook_id: uuid.UUID, events: Iterable[str]) -> None:
    """The webhook wants exactly `events` from now on."""
    await session.execute(
        delete(WebhookSubscription).where(WebhookSubscription.webhook_id == webhook_id)
    )
    rows = [{"webhook_id": webhook_id, "event": event} for event in sorted(set(events))]
    if rows:
        await session.execute(insert(WebhookSubscription).values(rows))


async def events_of(
    session: AsyncSession, webhook_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[str]]:
    """Each webhook's events, sorted (an id with none maps to an empty list)."""
    found: dict[uuid.UUID, list[str]] = {webhook_id: [] for webhook_id in webhook_ids}
    if not webhook_ids:
        return found
    statement = (
        select(WebhookSubscription.webhook_id, WebhookSubscription.event)
        .where(WebhookSubscription.webhook_id.in_(webhook_ids))
        .order_by(WebhookSubscription.event)
    )
    for webhook_id, event in (await session.execute(statement)).all():
        found[webhook_id].append(event)
    return found


async def get_webhook(
    session: AsyncSession, webhook_id: uuid.UUID, *, owner_key_id: OwnerFilter = ANY_OWNER
) -> Webhook | None:
    statement = select(Webhook).where(Webhook.id == webhook_id)
    if owner_key_id is not ANY_OWNER:
        statement = statement.where(_owned_by(owner_key_id))
    return await session.scalar(statement)


async def list_webhooks(
    session: AsyncSession, *, owner_key_id: OwnerFilter = ANY_OWNER, limit: int, offset: int
) -> tuple[list[Webhook], int]:
    """One page, newest first, and how many there are in all."""
    check_page(limit, offset)
    condition = _owned_by(owner_key_id) if owner_key_id is not ANY_OWNER else and_(True)
    page = (
        select(Webhook)
        .where(condition)
        .order_by(Webhook.created_at.desc(), Webhook.id.desc())
        .limit(limit)
        .offset(offset)
    )
    total = select(func.count(Webhook.id)).where(condition)
    return list((await session.scalars(page)).all()), (await session.scalar(total)) or 0


def _owned_by(owner_key_id: uuid.UUID | None) -> Any:
    if owner_key_id is None:
        return Webhook.owner_key_id.is_(None)
    return Webhook.owner_key_id == owner_key_id


async def update_webhook(session: AsyncSession, record: Webhook, **changes: Any) -> Webhook:
    """Set the given fields (url, description, enabled, disabled_reason) and flush."""
    for field, value in changes.items():
        setattr(record, field, value)
    record.updated_at = utcnow()
    await session.flush()
    return record


async def delete_webhook(session: AsyncSession, record: Webhook) -> None:
    """The webhook, its events and its deliveries go."""
    await session.execute(delete(Webhook).where(Webhook.id == record.id))


async def disable_webhook(session: AsyncSession, webhook_id: uuid.UUID, reason: str) -> None:
    statement = (
        update(Webhook)
        .where(Webhook.id == webhook_id)
        .values(enabled=False, disabled_reason=reason[:200], updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    await session.execute(statement)


# --- the worker's side -----------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """A delivery a worker holds for one attempt, with what it needs to send it."""

    delivery: WebhookDelivery
    url: str
    secret: str


async def claim_due(
    session: AsyncSession, *, now: datetime, lease_until: datetime, limit: int
) -> list[Claimed]:
    """Take up to `limit` deliveries that are due (pending, or sending with a lease that ran
    out) and whose webhook is enabled: each gets its next attempt number and the lease."""
    due = (
        select(WebhookDelivery.id)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(_is_due(now), Webhook.enabled.is_(True))
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True, of=WebhookDelivery)
    )
    # One statement: on SQLite it takes the write lock before it reads (a SELECT first would
    # read a snapshot another claimer may change before this one can write).
    claim = (
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(due), _is_due(now))
        .values(
            status=DeliveryStatus.SENDING,
            attempts=WebhookDelivery.attempts + 1,
            next_attempt_at=lease_until,
            last_attempt_at=now,
        )
        .returning(WebhookDelivery.id)
        .execution_options(synchronize_session=False)
    )
    claimed_ids = list((await session.scalars(claim)).all())
    if not claimed_ids:
        return []
    rows = await session.execute(
        select(WebhookDelivery, Webhook.url, Webhook.secret)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(WebhookDelivery.id.in_(claimed_ids))
        .order_by(WebhookDelivery.occurred_at)
        .execution_options(populate_existing=True)
    )
    return [Claimed(delivery, url, secret) for delivery, url, secret in rows.all()]


def _is_due(now: datetime) -> Any:
    return and_(
        WebhookDelivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.SENDING]),
        WebhookDelivery.next_attempt_at <= now,
    )


async def record_attempt(
    session: AsyncSession,
    delivery_id: uuid.UUID,
    attempts: int,
    *,
    status: DeliveryStatus,
    next_attempt_at: datetime,
    status_code: int | None,
    error: str | None,
    delivered_at: datetime | None = None,
) -> bool:
    """Store how attempt number `attempts` went; False if that attempt is no longer the
    delivery's (its lease ran out and another worker took it, or it was re-queued)."""
    statement = (
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.attempts == attempts,
            WebhookDelivery.status == DeliveryStatus.SENDING,
        )
        .values(
            status=status,
            next_attempt_at=next_attempt_at,
            last_status_code=status_code,
            last_error=error,
            delivered_at=delivered_at,
        )
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(statement)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def list_deliveries(
    session: AsyncSession, webhook_id: uuid.UUID, *, limit: int, offset: int
) -> tuple[list[WebhookDelivery], int]:
    """One page of the webhook's deliveries, newest first, and how many there are."""
    check_page(limit, offset)
    page = (
        select(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == webhook_id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        .limit(limit)
        .offset(offset)
    )
    total = select(func.count(WebhookDelivery.id)).where(WebhookDelivery.webhook_id == webhook_id)
    return list((await session.scalars(page)).all()), (await session.scalar(total)) or 0


async def get_delivery(
    session: AsyncSession, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery | None:
    statement = select(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.webhook_id == webhook_id
    )
    return await session.scalar(statement)


async def requeue(session: AsyncSession, delivery_id: uuid.UUID, now: datetime) -> bool:
    """Make a delivery that is not in flight due now, with its id (and attempt count) kept;
    False if an attempt of it is in flight."""
    statement = (
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            or_(
                WebhookDelivery.status != DeliveryStatus.SENDING,
                WebhookDelivery.next_attempt_at <= now,
            ),
        )
        .values(status=DeliveryStatus.PENDING, next_attempt_at=now, delivered_at=None)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(statement)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def oldest_due(session: AsyncSession, now: datetime) -> datetime | None:
    """When the longest-waiting due delivery (of an enabled webhook) became due; None when
    none is."""
    statement = (
        select(func.min(WebhookDelivery.next_attempt_at))
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(_is_due(now), Webhook.enabled.is_(True))
    )
    return await session.scalar(statement)
