"""What `/usage` and `/audit` answer."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class UsageRowOut(BaseModel):
    group: str | None = Field(
        description=(
            "The key id, session id, UTC day (YYYY-MM-DD) or `provider/model`; null: turns "
            "sent with keys disabled"
        )
    )
    name: str | None = Field(description="The key's name or the session's title, if any")
    turns: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: float

    model_config = ConfigDict(from_attributes=True)


class UsageOut(BaseModel):
    """Sums of the stored turns that started in [from, to), one row per group."""

    group_by: Literal["key", "session", "day", "model"]
    from_: datetime | None = Field(alias="from", serialization_alias="from")
    to: datetime | None
    rows: list[UsageRowOut]

    model_config = ConfigDict(populate_by_name=True)


class AuditRecordOut(BaseModel):
    """One state-changing request: never prompt text or secrets."""

    id: uuid.UUID
    at: datetime
    key_id: uuid.UUID | None
    key_name: str | None = Field(description="The key's name when it made the request")
    action: str = Field(description="What was asked for, e.g. `session.create`, `turn.prompt`")
    outcome: str = Field(description="`ok`, or the problem code the request was refused with")
    session_id: uuid.UUID | None
    turn_id: uuid.UUID | None
    target_id: str | None = Field(description="A key, webhook, delivery, permission or agent id")
    request_id: str | None = Field(description="The request's `X-Request-ID`")
    client: str | None = Field(description="The client's address")

    model_config = ConfigDict(from_attributes=True)
