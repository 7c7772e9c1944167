"""Webhooks: a key (with the `webhooks` scope) tells the gateway where to POST events of its
sessions, and sees how each delivery went."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from app.api.deps import WebhookManager, WebhooksDep, audited
from app.api.problems import problem_responses
from app.api.sessions import Limit, Offset
from app.schemas import Page
from app.schemas_webhooks import (
    DeliveryOut,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
    WebhookUpdate,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.post(
    "",
    dependencies=[audited("webhook.create")],
    status_code=201,
    response_model=WebhookCreated,
    summary="Create a webhook (its signing secret is shown only in this answer)",
    responses=problem_responses(422),
)
async def create_webhook(
    body: WebhookCreate, webhooks: WebhooksDep, principal: WebhookManager
) -> WebhookCreated:
    return await webhooks.create(body, principal)


@router.get(
    "",
    response_model=Page[WebhookOut],
    summary="List webhooks, newest first",
    responses=problem_responses(422),
)
async def list_webhooks(
    webhooks: WebhooksDep, principal: WebhookManager, limit: Limit = 50, offset: Offset = 0
) -> Page[WebhookOut]:
    items, total = await webhooks.list_webhooks(principal, limit=limit, offset=offset)
    return Page[WebhookOut](items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/{webhook_id}",
    response_model=WebhookOut,
    summary="One webhook",
    responses=problem_responses(404, 422),
)
async def get_webhook(
    webhook_id: uuid.UUID, webhooks: WebhooksDep, principal: WebhookManager
) -> WebhookOut:
    return await webhooks.get(webhook_id, principal)


@router.patch(
    "/{webhook_id}",
    dependencies=[audited("webhook.update")],
    response_model=WebhookOut,
    summary="Change a webhook's URL, events or description, or switch it off or on",
    responses=problem_responses(404, 422),
)
async def update_webhook(
    webhook_id: uuid.UUID, body: WebhookUpdate, webhooks: WebhooksDep, principal: WebhookManager
) -> WebhookOut:
    return await webhooks.update(webhook_id, body, principal)


@router.delete(
    "/{webhook_id}",
    dependencies=[audited("webhook.delete")],
    status_code=204,
    summary="Delete a webhook and its deliveries",
    responses=problem_responses(404, 422),
)
async def delete_webhook(
    webhook_id: uuid.UUID, webhooks: WebhooksDep, principal: WebhookManager
) -> Response:
    await webhooks.delete(webhook_id, principal)
    return Response(status_code=204)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=Page[DeliveryOut],
    summary="A webhook's deliveries, newest first, with how their attempts went",
    responses=problem_responses(404, 422),
)
async def list_deliveries(
    webhook_id: uuid.UUID,
    webhooks: WebhooksDep,
    principal: WebhookManager,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[DeliveryOut]:
    items, total = await webhooks.deliveries(webhook_id, principal, limit=limit, offset=offset)
    return Page[DeliveryOut](items=items, total=total, limit=limit, offset=offset)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/retry",
    dependencies=[audited("webhook.retry")],
    status_code=202,
    response_model=DeliveryOut,
    summary="Send a delivery again (same webhook-id), as soon as a worker looks",
    responses=problem_responses(404, 409, 422),
)
async def retry_delivery(
    webhook_id: uuid.UUID, delivery_id: uuid.UUID, webhooks: WebhooksDep, principal: WebhookManager
) -> DeliveryOut:
    return await webhooks.retry(webhook_id, delivery_id, principal)
