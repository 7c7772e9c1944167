"""What the webhook routes may do: a key manages its own webhooks (an admin key, all of them),
and a URL is checked before it is stored."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database
from app.errors import (
    DeliveryInFlight,
    DeliveryNotFound,
    WebhookHostUnresolvable,
    WebhookNotFound,
    WebhookTargetPrivate,
    WebhookUrlInvalid,
)
from app.models import DeliveryStatus, Webhook, WebhookDelivery, utcnow
from app.repositories import webhooks as webhooks_repo
from app.schemas_webhooks import (
    DeliveryOut,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
    WebhookUpdate,
)
from app.services import audit
from app.services.access import owner_filter
from app.services.auth import Principal
from app.services.webhooks import messages
from app.services.webhooks.sender import SendPolicy
from app.services.webhooks.targets import TargetRefused, check_target

_REFUSALS = {
    "webhook_url_invalid": WebhookUrlInvalid,
    "webhook_target_private": WebhookTargetPrivate,
    "webhook_host_unresolvable": WebhookHostUnresolvable,
}


class WebhookService:
    def __init__(self, db: Database, policy: SendPolicy) -> None:
        self.db = db
        self.policy = policy

    async def create(self, request: WebhookCreate, principal: Principal) -> WebhookCreated:
        """Store a webhook for `principal`'s key; its secret is in this answer only."""
        await self._check_target(request.url)
        secret = messages.new_secret()
        async with self.db.session() as session:
            record = await webhooks_repo.add_webhook(
                session,
                owner_key_id=principal.key_id,
                sees_all=principal.is_admin,
                url=request.url,
                secret=secret,
                events=[str(event) for event in request.events],
                description=request.description,
            )
            await audit.record(session, "webhook.create", target_id=str(record.id))
        out = _out(record, sorted(str(event) for event in set(request.events)))
        return WebhookCreated(**out.model_dump(), secret=secret)

    async def list_webhooks(
        self, principal: Principal, *, limit: int, offset: int
    ) -> tuple[list[WebhookOut], int]:
        async with self.db.read() as session:
            records, total = await webhooks_repo.list_webhooks(
                session, owner_key_id=owner_filter(principal), limit=limit, offset=offset
            )
            events = await webhooks_repo.events_of(session, [record.id for record in records])
        return [_out(record, events[record.id]) for record in records], total

    async def get(self, webhook_id: uuid.UUID, principal: Principal) -> WebhookOut:
        async with self.db.read() as session:
            record = await self._visible(session, webhook_id, principal)
            events = await webhooks_repo.events_of(session, [record.id])
        return _out(record, events[record.id])

    async def update(
        self, webhook_id: uuid.UUID, request: WebhookUpdate, principal: Principal
    ) -> WebhookOut:
        if request.url is not None:
            await self._check_target(request.url)
        async with self.db.session() as session:
            record = await self._visible(session, webhook_id, principal)
            changes: dict[str, object] = {}
            if request.url is not None:
                changes["url"] = request.url
            if request.description is not None:
                changes["description"] = request.description
            if request.enabled is not None:
                changes["enabled"] = request.enabled
                changes["disabled_reason"] = None
            record = await webhooks_repo.update_webhook(session, record, **changes)
            if request.events is not None:
                await webhooks_repo.set_events(session, record.id, map(str, request.events))
            events = await webhooks_repo.events_of(session, [record.id])
            await audit.record(session, "webhook.update", target_id=str(webhook_id))
        return _out(record, events[record.id])

    async def delete(self, webhook_id: uuid.UUID, principal: Principal) -> None:
        """The webhook goes, with its deliveries (those not sent yet are never sent)."""
        async with self.db.session() as session:
            record = await self._visible(session, webhook_id, principal)
            await webhooks_repo.delete_webhook(session, record)
            await audit.record(session, "webhook.delete", target_id=str(webhook_id))

    async def deliveries(
        self, webhook_id: uuid.UUID, principal: Principal, *, limit: int, offset: int
    ) -> tuple[list[DeliveryOut], int]:
        async with self.db.read() as session:
            await self._visible(session, webhook_id, principal)
            rows, total = await webhooks_repo.list_deliveries(
                session, webhook_id, limit=limit, offset=offset
            )
        return [delivery_out(row) for row in rows], total

    async def retry(
        self, webhook_id: uuid.UUID, delivery_id: uuid.UUID, principal: Principal
    ) -> DeliveryOut:
        """Send a delivery again as soon as a worker looks, with the same `webhook-id`."""
        async with self.db.session() as session:
            await self._visible(session, webhook_id, principal)
            row = await webhooks_repo.get_delivery(session, webhook_id, delivery_id)
            if row is None:
                raise DeliveryNotFound(f"webhook {webhook_id} has no delivery {delivery_id}")
            if not await webhooks_repo.requeue(session, delivery_id, utcnow()):
                raise DeliveryInFlight(
                    f"delivery {delivery_id} is being sent now; see how it went, then retry"
                )
            await audit.record(session, "webhook.retry", target_id=str(delivery_id))
            await session.refresh(row)  # as the requeue left it
        return delivery_out(row)

    async def _visible(
        self, session: AsyncSession, webhook_id: uuid.UUID, principal: Principal
    ) -> Webhook:
        record = await webhooks_repo.get_webhook(
            session, webhook_id, owner_key_id=owner_filter(principal)
        )
        if record is None:
            raise WebhookNotFound(f"no webhook {webhook_id}")
        return record

    async def _check_target(self, url: str) -> None:
        try:
            await check_target(
                url, allow_http=self.policy.allow_http, allow_private=self.policy.allow_private
            )
        except TargetRefused as refused:
            raise _REFUSALS[refused.code](str(refused)) from None


def _out(record: Webhook, events: list[str]) -> WebhookOut:
    return WebhookOut(
        id=record.id,
        url=record.url,
        events=events,
        description=record.description,
        enabled=record.enabled,
        disabled_reason=record.disabled_reason,
        owner_key_id=record.owner_key_id,
        sees_all=record.sees_all,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def delivery_out(row: WebhookDelivery) -> DeliveryOut:
    waiting = row.status in (DeliveryStatus.PENDING, DeliveryStatus.SENDING)
    return DeliveryOut(
        id=row.id,
        message_id=messages.message_id(row.id),
        webhook_id=row.webhook_id,
        event=row.event,
        session_id=row.session_id,
        turn_id=row.turn_id,
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at if waiting else None,
        last_attempt_at=row.last_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
        created_at=row.created_at,
    )
