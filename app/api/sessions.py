"""Sessions (one Paseo agent each), their prompts streamed as Server-Sent Events, and turns."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.api.deps import SessionsDep, SettingsDep, TurnsDep
from app.api.problems import problem_responses
from app.models import GatewaySession, SessionStatus
from app.schemas import (
    CancelAccepted,
    Page,
    PromptRequest,
    SessionCreate,
    SessionCreated,
    SessionDetail,
    SessionImport,
    SessionOut,
    TurnOut,
)
from app.services.feed import TurnFeed
from app.services.sessions import check_prompt, session_labels

router = APIRouter(prefix="/sessions", tags=["sessions"])

Limit = Annotated[int, Query(ge=1, le=200, description="Page size")]
Offset = Annotated[int, Query(ge=0, description="Items to skip")]

SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
STREAM_DESCRIPTION = """\
A `text/event-stream`. Events, each with an `id:` (its sequence number in the turn) and JSON
`data:`:

- `turn.started` `{turn_id, session_id, agent_id}`
- `turn.queued` `{turn_id}` when the gateway's turn limit is reached (it starts later)
- `agent.created` `{agent_id}` (first prompt of a session only)
- `text` `{delta}`: the agent's reply as it is produced
- `reasoning` `{delta}`, `tool` `{name, status}`, `notice` `{kind, text}` where Paseo shows them
- exactly one terminal event: `turn.completed` (with `final_text`, equal to the concatenated
  `text` deltas), `turn.failed`, `turn.cancelled`, `turn.timed_out` or `turn.permission`,
  each `{turn_id, status, final_text, error_code, message, usage}`.

Comment lines (`: ping`) keep the connection alive.
"""


@router.post(
    "",
    status_code=201,
    response_model=SessionCreated,
    summary="Create a session",
    description="The agent is created with the first prompt (here as `prompt`, or later).",
    responses=problem_responses(409, 413, 422, 502, 503, 504),
)
async def create_session(body: SessionCreate, sessions: SessionsDep) -> SessionCreated:
    record, turn = await sessions.create(body)
    created = SessionCreated.model_validate(record, from_attributes=True)
    created.turn = TurnOut.model_validate(turn) if turn else None
    return created


@router.post(
    "/import",
    status_code=201,
    response_model=SessionOut,
    summary="Register an existing provider session (paseo import)",
    responses=problem_responses(422, 502, 503, 504),
)
async def import_session(body: SessionImport, sessions: SessionsDep) -> SessionOut:
    return SessionOut.model_validate(await sessions.import_session(body))


@router.get("", response_model=Page[SessionOut], summary="List sessions, newest first")
async def list_sessions(
    sessions: SessionsDep,
    status: Annotated[SessionStatus | None, Query(description="Only this status")] = None,
    label: Annotated[
        list[str], Query(description="key=value; repeat to require several labels")
    ] = [],  # noqa: B006 - FastAPI copies defaults
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[SessionOut]:
    items, total = await sessions.list_sessions(
        status=status, labels=session_labels(label), limit=limit, offset=offset
    )
    return Page[SessionOut].of(SessionOut, items, total, limit=limit, offset=offset)


@router.get(
    "/{session_id}",
    response_model=SessionDetail,
    summary="One session, with its agent's live status",
    responses=problem_responses(404, 422),
)
async def get_session(
    session_id: uuid.UUID, sessions: SessionsDep, turns: TurnsDep
) -> SessionDetail:
    record = await sessions.get(session_id)
    detail = _detail(record)
    detail.agent = await sessions.live_status(record)
    active = await turns.active_turn(session_id)
    detail.active_turn = TurnOut.model_validate(active) if active else None
    return detail


@router.delete(
    "/{session_id}",
    response_model=SessionOut,
    summary="Close a session: archive its agent",
    responses=problem_responses(404, 409, 422, 502, 503, 504),
)
async def close_session(
    session_id: uuid.UUID,
    sessions: SessionsDep,
    force: Annotated[bool, Query(description="Archive even while a turn runs")] = False,
) -> SessionOut:
    return SessionOut.model_validate(await sessions.close(session_id, force=force))


@router.post(
    "/{session_id}/prompt",
    summary="Send a prompt; the answer streams back as Server-Sent Events",
    description=STREAM_DESCRIPTION,
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The turn's event stream"},
        **problem_responses(404, 409, 413, 422, 502, 503, 504),
    },
)
async def prompt_session(
    session_id: uuid.UUID, body: PromptRequest, turns: TurnsDep, settings: SettingsDep
) -> EventSourceResponse:
    check_prompt(body.prompt, settings.max_prompt_bytes)
    turn, feed = await turns.start_turn(session_id, body.prompt)
    headers = {**SSE_HEADERS, "X-Turn-Id": str(turn.id)}
    return EventSourceResponse(
        _sse(feed), ping=settings.sse_ping_seconds, headers=headers, send_timeout=30
    )


async def _sse(feed: TurnFeed) -> AsyncIterator[ServerSentEvent]:
    async for event in feed.subscribe():
        yield ServerSentEvent(data=json.dumps(event.data), event=event.name, id=str(event.seq))


@router.post(
    "/{session_id}/cancel",
    status_code=202,
    response_model=CancelAccepted,
    summary="Stop the session's running turn",
    responses=problem_responses(404, 409, 422, 502, 503, 504),
)
async def cancel_turn(session_id: uuid.UUID, turns: TurnsDep) -> CancelAccepted:
    turn = await turns.cancel(session_id)
    return CancelAccepted(
        turn_id=turn.id,
        status="cancelling",
        detail="paseo was asked to stop the agent; the stream ends with turn.cancelled",
    )


@router.get(
    "/{session_id}/turns",
    response_model=Page[TurnOut],
    summary="The session's turns, oldest first",
    responses=problem_responses(404, 422),
)
async def list_turns(
    session_id: uuid.UUID, turns: TurnsDep, limit: Limit = 50, offset: Offset = 0
) -> Page[TurnOut]:
    items, total = await turns.list_turns(session_id, limit=limit, offset=offset)
    return Page[TurnOut].of(TurnOut, items, total, limit=limit, offset=offset)


@router.get(
    "/{session_id}/turns/{turn_id}",
    response_model=TurnOut,
    summary="One turn: prompt, status, final text, usage",
    responses=problem_responses(404, 422),
)
async def get_turn(session_id: uuid.UUID, turn_id: uuid.UUID, turns: TurnsDep) -> TurnOut:
    return TurnOut.model_validate(await turns.get_turn(session_id, turn_id))


def _detail(record: GatewaySession) -> SessionDetail:
    return SessionDetail.model_validate(record, from_attributes=True)
