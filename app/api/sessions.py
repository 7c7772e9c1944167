"""Sessions (one Paseo agent each), their prompts streamed as Server-Sent Events, and turns."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.api.deps import Prompter, Reader, ReadOnlyReader, ReadSession, SessionsDep, audited
from app.api.encoded import encoded
from app.api.problems import problem_responses
from app.models import GatewaySession, SessionStatus
from app.schemas import (
    LABEL_FILTER_DESCRIPTION,
    MAX_OFFSET,
    Page,
    SessionCreate,
    SessionCreated,
    SessionDetail,
    SessionImport,
    SessionOut,
    SessionUpdate,
    SessionUsage,
    TurnOut,
)
from app.services.sessions import session_labels

router = APIRouter(prefix="/sessions", tags=["sessions"])
LabelFilter = Annotated[list[str], Query(description=LABEL_FILTER_DESCRIPTION)]

Limit = Annotated[int, Query(ge=1, le=200, description="Page size")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip")]


@router.post(
    "",
    dependencies=[audited("session.create")],
    status_code=201,
    response_model=SessionCreated,
    summary="Create a session",
    description=(
        "The agent is created with the first prompt (here as `prompt`, or later). Checked "
        "before anything is stored, against the session's daemon: the `provider` must run "
        "agents there (422 `invalid_input`); a `model` must be one it lists (422 "
        "`unknown_model`, the ids in `models`) and a `mode` one of its mode ids (422 "
        "`unknown_mode`, the ids in `modes`), 503 `provider_not_ready` with `Retry-After` "
        "while the provider's lists are loading; the `cwd` must be inside the daemon's "
        "workspace roots (422 `invalid_input`) and, under a root the gateway can see, an "
        "existing directory (422 `cwd_not_found`, `cwd_not_a_directory`). With a first "
        "`prompt`, a key past its budget gets 429 `budget_exceeded` before anything is "
        "stored; past its rate limit, 429 `rate_limited` with the stored session's "
        "`session_id`."
    ),
    responses=problem_responses(400, 409, 413, 415, 422, 429, 502, 503, 504),
)
async def create_session(
    body: SessionCreate, sessions: SessionsDep, principal: Prompter
) -> SessionCreated:
    record, turn = await sessions.create(body, principal)
    created = SessionCreated.model_validate(record, from_attributes=True)
    created.turn = TurnOut.model_validate(turn) if turn else None
    return created


@router.post(
    "/import",
    dependencies=[audited("session.import")],
    status_code=201,
    response_model=SessionOut,
    summary="Register an existing provider session (paseo import)",
    responses=problem_responses(400, 409, 422, 502, 503, 504),
)
async def import_session(
    body: SessionImport, sessions: SessionsDep, principal: Prompter
) -> SessionOut:
    return SessionOut.model_validate(await sessions.import_session(body, principal))


@router.get(
    "",
    response_model=Page[SessionOut],
    summary="List sessions, newest first",
    responses=problem_responses(422),
)
async def list_sessions(
    sessions: SessionsDep,
    principal: ReadOnlyReader,
    reads: ReadSession,
    status: Annotated[SessionStatus | None, Query(description="Only this status")] = None,
    label: LabelFilter = [],  # noqa: B006 - FastAPI copies defaults
    limit: Limit = 50,
    offset: Offset = 0,
) -> Response:
    items, total = await sessions.list_sessions(
        principal, reads, status=status, labels=session_labels(label), limit=limit, offset=offset
    )
    return encoded(Page[SessionOut].of(SessionOut, items, total, limit=limit, offset=offset))


@router.get(
    "/{session_id}",
    response_model=SessionDetail,
    summary="One session, with its agent's live status",
    responses=problem_responses(404, 422),
)
async def get_session(session_id: uuid.UUID, sessions: SessionsDep, principal: Reader) -> Response:
    read = await sessions.get_with_activity(session_id, principal)
    agent = await sessions.live_status(read.record)  # may mark it (agent gone elsewhere)
    detail = _detail(read.record)
    detail.agent = agent
    detail.active_turn = TurnOut.model_validate(read.active_turn) if read.active_turn else None
    detail.usage = SessionUsage.model_validate(read.usage)
    return encoded(detail)


@router.patch(
    "/{session_id}",
    dependencies=[audited("session.update")],
    response_model=SessionOut,
    summary="Steer a session: its title, labels and mode (its agent's too)",
    description=(
        "`mode` takes a mode `id` (not its label): one of the agent's modes, or before the "
        "session has an agent, one of its provider's as `GET /providers` lists them; else 422 "
        "`unknown_mode` naming the ids (`modes`), 503 `provider_not_ready` with `Retry-After` "
        "while the provider is loading. Nothing changes when any part is refused."
    ),
    responses=problem_responses(400, 404, 409, 422, 502, 503, 504),
)
async def update_session(
    session_id: uuid.UUID, body: SessionUpdate, sessions: SessionsDep, principal: Prompter
) -> SessionOut:
    return SessionOut.model_validate(await sessions.update(session_id, body, principal))


@router.delete(
    "/{session_id}",
    dependencies=[audited("session.close")],
    response_model=SessionOut,
    summary="Close a session: archive its agent",
    responses=problem_responses(404, 409, 422, 502, 503, 504),
)
async def close_session(
    session_id: uuid.UUID,
    sessions: SessionsDep,
    principal: Prompter,
    force: Annotated[bool, Query(description="Archive even while a turn runs")] = False,
) -> SessionOut:
    return SessionOut.model_validate(await sessions.close(session_id, principal, force=force))


def _detail(record: GatewaySession) -> SessionDetail:
    return SessionDetail.model_validate(record, from_attributes=True)
