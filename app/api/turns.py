"""A session's turns: send a prompt (streamed as Server-Sent Events), replay, cancel, read."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.api.deps import (
    AuthDep,
    Prompter,
    Reader,
    ReadOnlyReader,
    ReadSession,
    SettingsDep,
    TurnsDep,
    audited,
    stream_access,
)
from app.api.event_stream import ServerStopping, event_source, until_shutdown
from app.api.problems import problem_responses
from app.errors import InvalidInput, MediaUnsupported
from app.schemas import (
    MAX_OFFSET,
    CancelResult,
    Page,
    PromptRequest,
    TurnItemsOut,
    TurnOut,
)
from app.services.auth import Principal
from app.services.prompt_media import check_media
from app.services.sessions import check_prompt
from app.services.turn.events import StoredEvent
from app.services.turn.items import read_turn_items
from app.services.turn.run import events_url

router = APIRouter(prefix="/sessions/{session_id}", tags=["turns"])

Limit = Annotated[int, Query(ge=1, le=200, description="Page size")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Retrying with the same key and body returns the same turn and stream.",
    ),
]
LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        pattern=r"^[0-9]{1,9}$",
        description="Resume after this event (browsers send it when they reconnect).",
    ),
]

STREAM_DESCRIPTION = """\
A `text/event-stream`. Each event has an `id:` (its sequence number in the turn) and JSON
`data:`:

- `turn.started` `{turn_id, session_id, agent_id, events_url}`, plus `images`
  `[{media_type, bytes}]` and `attachments` `[{title, bytes}]` when the prompt carried them
  (their contents are not stored)
- `turn.queued` `{turn_id}` when the gateway's turn limit is reached (it starts later)
- `agent.created` `{agent_id}` (first prompt of a session only)
- `text` `{delta}`: the agent's reply as it is produced
- `reasoning` `{delta}`: the agent's thinking as it is produced (each part once)
- `tool` `{call_id, name, status, kind, detail, error}`: one per state change of a tool call
  (`status` running, completed, failed or canceled; the states of one call share `call_id`).
  `kind` is `shell`, `read`, `edit`, `write`, `search`, `plan` or `other`; `detail` has the
  keys that apply: `command`, `cwd`, `output`, `exit_code` (shell), `path`, `content`
  (read, write), `path`, `old_string`, `new_string`, `diff` (edit, unified), `query`
  (search), `content` (plan), `url` (fetch). Each text field keeps at most 64 KiB; a cut one
  makes the detail say `truncated: true`. On the CLI transport `detail` is `{}`, `error` is
  null and `call_id` is the gateway's own (Paseo's `attach` prints only name and status)
- `todo` `{items, completed, total}`: the agent's task list as it stands, `items` a list of
  `{text, done}` (null on the CLI transport, which sees only the counts)
- `notice` `{kind, text}`: other lines Paseo shows (`attention`, `error`, `turn_failed`)
- `turn.permission_requested` `{permission_id, name, kind, title, description, input,
  actions}` when the agent asks a person (the turn is `waiting_permission`; answer it with
  `POST /sessions/{id}/permissions/{permission_id}`), and `turn.permission_resolved`
  `{permission_id, behavior, by, message?}` once answered (`by`: the key's name, `timeout`,
  or `paseo` for an answer given outside the gateway); the turn then goes on to its end
- `turn.steered` `{prompt}` where a prompt sent with `mode=steer` joined the running turn
  (the turn goes on; its `prompt` stays the one that started it)
- `turn.cancelling` `{detail}` when Paseo has not yet confirmed a requested stop
- `gateway.shutdown` `{detail, events_url, last_event_id}` when this gateway stops: the turn
  goes on; reconnect to `events_url` (on any gateway) with `Last-Event-ID`
- exactly one terminal event: `turn.completed` (its `final_text` equals the concatenated
  `text` deltas), `turn.failed`, `turn.cancelled`, `turn.timed_out` or `turn.interrupted`,
  each `{turn_id, status, final_text, error_code, message, usage}`.
  Every event is stored before it is sent: ids run 1, 2, 3… without a gap, and a replay
  (after any crash too) is exactly what was sent.

The turn does not depend on this connection: if it drops, reconnect to `events_url` with
`Last-Event-ID` (or `?after=`) to get the rest. Comment lines (`: ping`) keep it alive.
"""


async def _stream(
    events: AsyncIterator[StoredEvent], shutdown: anyio.Event, events_url: str
) -> AsyncIterator[ServerSentEvent]:
    """The stored events as SSE; on server shutdown, a last `gateway.shutdown` event that
    tells the client where to resume."""
    async with aclosing(until_shutdown(events, shutdown)) as items:
        async for item in items:
            if isinstance(item, ServerStopping):
                farewell = {
                    "detail": "this gateway is shutting down; reconnect to events_url with "
                    "Last-Event-ID to get the rest of the turn",
                    "events_url": events_url,
                    "last_event_id": item.last_seq,
                }
                yield ServerSentEvent(data=json.dumps(farewell), event="gateway.shutdown")
                return
            yield ServerSentEvent(data=json.dumps(item.data), event=item.name, id=str(item.seq))


def _event_source(
    events: AsyncIterator[StoredEvent], ping: float, headers: dict[str, str], events_url: str
) -> EventSourceResponse:
    shutdown = anyio.Event()
    return event_source(_stream(events, shutdown, events_url), shutdown, ping=ping, headers=headers)


@router.post(
    "/prompt",
    dependencies=[audited("turn.prompt")],
    summary="Send a prompt; the answer streams back as Server-Sent Events",
    description=STREAM_DESCRIPTION,
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The turn's event stream"},
        **problem_responses(400, 404, 409, 413, 415, 422, 502, 503, 504),
    },
)
async def prompt_session(
    session_id: uuid.UUID,
    body: PromptRequest,
    turns: TurnsDep,
    settings: SettingsDep,
    auth: AuthDep,
    principal: Prompter,
    idempotency_key: IdempotencyKey = None,
) -> EventSourceResponse:
    check_prompt(body.prompt, settings.max_prompt_bytes)
    media = check_media(body.prompt, body.images, body.attachments, settings.max_prompt_bytes)
    if body.mode == "steer":
        if media:
            raise MediaUnsupported(
                "images and attachments start a turn of their own; they cannot join a running "
                "one: send them with mode=queue or mode=interrupt"
            )
        if idempotency_key is not None:
            raise InvalidInput(
                "Idempotency-Key cannot be used with mode=steer (a steer starts no turn to "
                "find again); send it without the header"
            )
        turn = await turns.steer_turn(session_id, body.prompt, principal)
    else:
        turn, _ = await turns.start_turn(
            session_id,
            body.prompt,
            principal,
            idempotency_key=idempotency_key,
            interrupt=body.mode == "interrupt",
            media=media,
        )
    url = events_url(session_id, turn.id)
    headers = {
        "X-Turn-Id": str(turn.id),
        "Content-Location": url,
        "Link": f'<{url}>; rel="events"',
        # For EventSource, which cannot send headers: `?token=` on the events URL only.
        "X-Stream-Token": await auth.issue_stream_token(turn.id, principal.key_id),
    }
    return _event_source(turns.events(turn.id), settings.sse_ping_seconds, headers, url)


@router.get(
    "/turns/{turn_id}/events",
    summary="A turn's events: replayed, then followed live until the turn ends",
    description=STREAM_DESCRIPTION,
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The turn's event stream"},
        **problem_responses(401, 403, 404, 422),
    },
    openapi_extra={"security": [{"HTTPBearer": []}, {}]},
)
async def turn_events(
    session_id: uuid.UUID,
    turn_id: uuid.UUID,
    access: Annotated[Principal | None, Depends(stream_access)],
    turns: TurnsDep,
    settings: SettingsDep,
    after: Annotated[
        int | None,
        Query(ge=0, le=MAX_OFFSET, description="Only events after this sequence number"),
    ] = None,
    last_event_id: LastEventId = None,
    token: Annotated[
        str | None,
        Query(max_length=512, description="The prompt's `X-Stream-Token` (instead of a key)"),
    ] = None,
) -> EventSourceResponse:
    del token  # checked by `stream_access`, before anything else
    await turns.get_turn(session_id, turn_id, access)
    # A browser reconnects to the same URL (with its ?after=) and adds Last-Event-ID.
    start = max(after or 0, int(last_event_id or 0))
    return _event_source(
        turns.events(turn_id, after=start),
        settings.sse_ping_seconds,
        {"X-Turn-Id": str(turn_id)},
        events_url(session_id, turn_id),
    )


async def _cancel(
    turns: TurnsDep, session_id: uuid.UUID, turn_id: uuid.UUID | None, principal: Prompter
) -> JSONResponse:
    turn, confirmed = await turns.cancel(session_id, turn_id, principal)
    detail = (
        f"the turn has ended ({turn.status})"
        if confirmed
        else "Paseo was asked to stop the agent and has not confirmed yet; the turn's stream "
        "ends with turn.cancelled once it does"
    )
    result = CancelResult(turn=TurnOut.model_validate(turn), confirmed=confirmed, detail=detail)
    return JSONResponse(result.model_dump(mode="json"), status_code=200 if confirmed else 202)


CANCEL_RESPONSES = {
    202: {"model": CancelResult, "description": "Stop requested, not yet confirmed by Paseo"},
    **problem_responses(404, 409, 422, 502, 503, 504),
}


@router.post(
    "/cancel",
    dependencies=[audited("turn.cancel")],
    response_model=CancelResult,
    summary="Stop the session's running turn (waits for Paseo to confirm)",
    responses=CANCEL_RESPONSES,
)
async def cancel_session_turn(
    session_id: uuid.UUID, turns: TurnsDep, principal: Prompter
) -> JSONResponse:
    return await _cancel(turns, session_id, None, principal)


@router.post(
    "/turns/{turn_id}/cancel",
    dependencies=[audited("turn.cancel")],
    response_model=CancelResult,
    summary="Stop this turn (waits for Paseo to confirm)",
    responses=CANCEL_RESPONSES,
)
async def cancel_turn(
    session_id: uuid.UUID, turn_id: uuid.UUID, turns: TurnsDep, principal: Prompter
) -> JSONResponse:
    return await _cancel(turns, session_id, turn_id, principal)


@router.get(
    "/turns",
    response_model=Page[TurnOut],
    summary="The session's turns, oldest first",
    responses=problem_responses(404, 422),
)
async def list_turns(
    session_id: uuid.UUID,
    turns: TurnsDep,
    principal: ReadOnlyReader,
    reads: ReadSession,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[TurnOut]:
    items, total = await turns.list_turns(session_id, principal, reads, limit=limit, offset=offset)
    return Page[TurnOut].of(TurnOut, items, total, limit=limit, offset=offset)


@router.get(
    "/turns/{turn_id}",
    response_model=TurnOut,
    summary="One turn: prompt, status, final text, usage",
    responses=problem_responses(404, 422),
)
async def get_turn(
    session_id: uuid.UUID, turn_id: uuid.UUID, turns: TurnsDep, principal: Reader
) -> TurnOut:
    return TurnOut.model_validate(await turns.get_turn(session_id, turn_id, principal))


ITEMS_DESCRIPTION = """\
The turn folded from its stored events into the items a client renders, in order: the prompt
(`message`, role `user`, with `images`/`attachments` when it had them; a prompt steered into
the turn is another, where it joined), each block of reply (`message`, role `assistant`,
`output_text`: contiguous `text` deltas; a new item between starts a new block), `reasoning`,
each `tool_call` in its last state where it first appeared (`detail` keys of later states
merged over earlier ones), the `todo` list as it stands, each `permission_request` with its
`resolution` once answered, `notice`s, and `usage` last when the turn ended with usage.

Each item has `id` (`<turn_id>:<first_seq>`, the same at every read) and `first_seq`/`last_seq`,
the events it was folded from. A running turn answers with its items so far: follow it with
`GET …/events?after=<last_seq>` and fold the later events the same way.
"""


@router.get(
    "/turns/{turn_id}/items",
    response_model=TurnItemsOut,
    summary="A turn as ordered items: prompt, reply, reasoning, tool calls, todos, usage",
    description=ITEMS_DESCRIPTION,
    responses=problem_responses(404, 422),
)
async def turn_items(
    session_id: uuid.UUID, turn_id: uuid.UUID, principal: ReadOnlyReader, reads: ReadSession
) -> TurnItemsOut:
    return TurnItemsOut.model_validate(await read_turn_items(reads, session_id, turn_id, principal))
