"""The webhook routes' bodies and answers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.models import DeliveryStatus, WebhookEvent
from app.services.webhooks.targets import MAX_URL_CHARS

WebhookUrl = Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL_CHARS)]
Events = Annotated[list[WebhookEvent], Field(min_length=1, max_length=len(WebhookEvent))]
Description = Annotated[str, StringConstraints(max_length=500)]


class WebhookCreate(BaseModel):
    url: WebhookUrl = Field(description="Where to POST: https (http only when allowed)")
    events: Events = Field(description="The events to be told about")
    description: Description | None = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://ci.example.com/paseo-hook",
                    "events": ["turn.completed", "turn.failed", "turn.permission_requested"],
                    "description": "CI bot",
                }
            ]
        },
    )


class WebhookUpdate(BaseModel):
    url: WebhookUrl | None = None
    events: Events | None = None
    description: Description | None = None
    enabled: bool | None = Field(
        default=None, description="false stops deliveries; true starts them again"
    )

    model_config = ConfigDict(extra="forbid")


class WebhookOut(BaseModel):
    """A webhook as listed: never its secret."""

    id: uuid.UUID
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None = Field(
        description="Why the gateway switched it off (the receiver answered 410), if it did"
    )
    owner_key_id: uuid.UUID | None = Field(description="The key that made it")
    sees_all: bool = Field(
        description="It hears every session's events (made by an admin key), not only its key's"
    )
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(
        description="The signing secret (`whsec_…`); shown this once only. Verify each "
        "delivery with it and any Standard Webhooks library."
    )


class DeliveryOut(BaseModel):
    """One event for one webhook, and how its attempts went."""

    id: uuid.UUID
    message_id: str = Field(description="The `webhook-id` header, the same at every attempt")
    webhook_id: uuid.UUID
    event: str
    session_id: uuid.UUID | None
    turn_id: uuid.UUID | None
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = Field(
        description="When the next attempt is due (pending), or its claim ends (sending)"
    )
    last_attempt_at: datetime | None
    last_status_code: int | None = Field(description="The receiver's last HTTP status, if any")
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
