"""Usage (what turns used, per key, session, day or model) and the audit trail (admins)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import Admin, DbDep, Reader, UsageDep
from app.api.problems import problem_responses
from app.api.sessions import Limit, Offset
from app.repositories.audit import AuditFilter
from app.repositories.usage import GroupBy
from app.schemas import Page
from app.schemas_usage import AuditRecordOut, UsageOut, UsageRowOut
from app.services import audit

router = APIRouter(tags=["usage and audit"])

From = Annotated[
    datetime | None, Query(alias="from", description="From this time on (ISO 8601, with offset)")
]
To = Annotated[datetime | None, Query(description="Before this time (ISO 8601, with offset)")]


@router.get(
    "/usage",
    response_model=UsageOut,
    summary="What the key's turns used (every key's, for an admin key), grouped",
    responses=problem_responses(422),
)
async def get_usage(
    usage: UsageDep,
    principal: Reader,
    group_by: Annotated[
        GroupBy, Query(description="One row per key, session, UTC day or model")
    ] = "day",
    since: From = None,
    to: To = None,
) -> UsageOut:
    rows = await usage.usage(principal, group_by, since=since, until=to)
    items = [UsageRowOut.model_validate(row) for row in rows]
    return UsageOut(group_by=group_by, from_=since, to=to, rows=items)


@router.get(
    "/audit",
    response_model=Page[AuditRecordOut],
    summary="The audit trail: every state-changing request, newest first (admin)",
    responses=problem_responses(403, 422),
)
async def get_audit(
    db: DbDep,
    principal: Admin,
    key_id: Annotated[uuid.UUID | None, Query(description="Made with this key")] = None,
    action: Annotated[
        str | None, Query(max_length=64, description="This action, e.g. `turn.prompt`")
    ] = None,
    session_id: Annotated[uuid.UUID | None, Query(description="About this session")] = None,
    since: From = None,
    to: To = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[AuditRecordOut]:
    del principal
    matching = AuditFilter(key_id, action, session_id, since, to)
    rows, total = await audit.list_records(db, matching, limit=limit, offset=offset)
    return Page.of(AuditRecordOut, rows, total, limit=limit, offset=offset)
