"""A person in the loop: the agent's pending permission requests, and answering them."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path

from app.api.deps import PermissionsDep, Prompter, Reader, audited
from app.api.problems import problem_responses
from app.paseo.types import PermissionRequest
from app.schemas import PermissionAnswered, PermissionAnswerIn

router = APIRouter(prefix="/sessions", tags=["permissions"])
PermissionId = Annotated[
    str, Path(max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", description="Its `id`")
]


@router.get(
    "/{session_id}/permissions",
    response_model=list[PermissionRequest],
    summary="What the session's agent waits for a person to answer",
    description=(
        "Pending requests, as Paseo has them now. The turn that waits is `waiting_permission` "
        "and its stream said `turn.permission_requested`. On the CLI transport a request "
        "carries no `kind`, `input` or `actions` (the CLI does not show them)."
    ),
    responses=problem_responses(404, 422, 502, 503, 504),
)
async def list_permissions(
    session_id: uuid.UUID, permissions: PermissionsDep, principal: Reader
) -> list[PermissionRequest]:
    return await permissions.pending(session_id, principal)


@router.post(
    "/{session_id}/permissions/{permission_id}",
    dependencies=[audited("permission.answer")],
    response_model=PermissionAnswered,
    summary="Allow or deny one of the agent's requests",
    description=(
        "200 once Paseo has taken the answer; the turn's stream then says "
        "`turn.permission_resolved` `{permission_id, behavior, by}` and goes on to its end. "
        "404 for a request that is unknown or answered already, 409 when no turn of the "
        "session waits for a permission."
    ),
    responses=problem_responses(400, 404, 409, 422, 502, 503, 504),
)
async def answer_permission(
    session_id: uuid.UUID,
    permission_id: PermissionId,
    body: PermissionAnswerIn,
    permissions: PermissionsDep,
    principal: Prompter,
) -> PermissionAnswered:
    return await permissions.answer(session_id, permission_id, body, principal)
