"""The search route's answer."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class SearchHitOut(BaseModel):
    """One turn whose prompt or final text holds every word searched for."""

    session_id: uuid.UUID = Field(description="The session the turn belongs to")
    turn_id: uuid.UUID = Field(description="The matching turn (`GET /sessions/{id}/turns/{id}`)")
    started_at: datetime = Field(description="When the turn started")
    session_title: str | None = Field(description="The session's title, if it has one")
    snippet: str = Field(
        description=(
            "HTML: a passage of the final text (or, if only it matches, of the prompt) with "
            "its text escaped and each match in `<mark>…</mark>`"
        )
    )

    model_config = ConfigDict(from_attributes=True)
