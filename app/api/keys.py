"""API keys, for admins: create (the secret is shown once), list, set a budget, revoke."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import Admin, AuthDep, audited
from app.api.problems import problem_responses
from app.schemas import KeyCreate, KeyCreated, KeyOut, KeyPatch

router = APIRouter(prefix="/keys", tags=["keys"])


@router.post(
    "",
    dependencies=[audited("key.create")],
    status_code=201,
    response_model=KeyCreated,
    summary="Create an API key (its secret is shown only in this answer)",
    responses=problem_responses(400, 422),
)
async def create_key(body: KeyCreate, auth: AuthDep, principal: Admin) -> KeyCreated:
    del principal
    limits = body.limits.as_stored() if body.limits else None
    created = await auth.create_key(body.name, body.scopes, limits=limits)
    out = KeyOut.model_validate(created.key)
    return KeyCreated(**out.model_dump(), secret=created.secret)


@router.get("", response_model=list[KeyOut], summary="List API keys")
async def list_keys(
    auth: AuthDep,
    principal: Admin,
    revoked: Annotated[bool, Query(description="Include revoked keys")] = False,
) -> list[KeyOut]:
    del principal
    return [KeyOut.model_validate(key) for key in await auth.list_keys(include_revoked=revoked)]


@router.patch(
    "/{key_id}",
    dependencies=[audited("key.update")],
    response_model=KeyOut,
    summary="Set an API key's budget (`limits`; null removes them)",
    responses=problem_responses(404, 422),
)
async def update_key(key_id: uuid.UUID, body: KeyPatch, auth: AuthDep, principal: Admin) -> KeyOut:
    del principal
    limits = body.limits.as_stored() if body.limits else None
    return KeyOut.model_validate(await auth.set_limits(key_id, limits))


@router.delete(
    "/{key_id}",
    dependencies=[audited("key.revoke")],
    response_model=KeyOut,
    summary="Revoke an API key (it stops working at once)",
    responses=problem_responses(404, 422),
)
async def revoke_key(key_id: uuid.UUID, auth: AuthDep, principal: Admin) -> KeyOut:
    del principal
    return KeyOut.model_validate(await auth.revoke_key(key_id))
