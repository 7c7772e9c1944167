"""Answers a route has already built as a pydantic model, encoded once.

Given a model, FastAPI dumps it to a dict, validates that against the route's
`response_model` and encodes the result again: three passes over a page of rows. A route
that built its answer from its own schema returns `encoded(answer)` instead; its
`response_model` still documents it in /docs.
"""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel


def encoded(answer: BaseModel, *, status_code: int = 200) -> Response:
    """`answer` as JSON, as FastAPI would have written it (by alias, UTF-8)."""
    return Response(
        answer.model_dump_json(by_alias=True),
        status_code=status_code,
        media_type="application/json",
    )
