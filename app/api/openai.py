"""OpenAI-compatible routes: `GET /v1/models` and `POST /v1/chat/completions` onto sessions.

A conversation is a gateway session: `X-Paseo-Session` names it, and every answer returns it.
The turn underneath is the one every route runs (stored, replayable at its events URL, one at
a time per session), and a client that goes away does not cancel it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse, Response
from sse_starlette import ServerSentEvent

from app.aio import cancel_and_wait
from app.api.deps import ChatsDep, Prompter, Reader, SettingsDep, TurnsDep, audited
from app.api.event_stream import ServerStopping, event_source, until_shutdown, watch_shutdown
from app.api.openai_chunks import (
    DONE,
    Completion,
    chat_completion,
    completion_for,
    first_chunk,
    stream_frames,
    turn_failure,
)
from app.api.openai_errors import (
    openai_error_body,
    openai_error_response,
    openai_error_responses,
)
from app.schemas_openai import ChatCompletion, ChatCompletionRequest, ModelList, ModelOut
from app.services.chat_completions import ChatTurn
from app.services.turn.events import StoredEvent
from app.services.turn.run import events_url
from app.services.turn.states import TERMINAL_EVENTS

router = APIRouter(prefix="/v1", tags=["openai"])

SESSION_HEADER = "X-Paseo-Session"
SHUTDOWN_CODE = "gateway_shutdown"
SessionHeader = Annotated[
    uuid.UUID | None,
    Header(
        alias=SESSION_HEADER,
        description="The session to continue (every answer names it); absent: a new session.",
    ),
]
CHAT_DESCRIPTION = """\
OpenAI's Chat Completions, answered by a Paseo agent. The `model` (`provider/model`, as
`GET /v1/models` lists them) picks the agent of a new session; the answer's
`X-Paseo-Session` header names that session, and sending it back continues the same agent.

- **New session** (no header): the conversation so far becomes the first prompt: system and
  developer messages first, then the earlier messages as a transcript (`User: …`,
  `Assistant: …`), then the newest user message; a lone user message is sent as it is.
- **Existing session**: the agent keeps its own history, so only the newest user message
  (the last message, which must be the user's) is sent; earlier `messages` are not re-sent.
- `stream: true`: `chat.completion.chunk` lines as the agent writes, ending `data: [DONE]`;
  `stream_options.include_usage` adds the usage chunk. Reasoning, tool activity and
  permission requests have no place in a chunk and are left out: the turn's events URL
  (`Link: <…>; rel="events"`) has them. A turn that does not complete ends the stream with an
  `{"error": …}` line. Otherwise one `chat.completion`.
- A second request while the session's turn runs: `409`. A client that disconnects does not
  cancel the turn; `POST /sessions/{id}/cancel` does.
- Content is read from `text` parts and, in user messages, `image_url` parts whose `url` is a
  base64 data URL (`data:image/png;base64,...`; png, jpeg, gif, webp; at most 8 images of
  5 MiB, 20 MiB together). The gateway fetches nothing: an http(s) URL is refused (400). A new
  session's first prompt carries every image of the conversation; an existing session's,
  those of the newest message. `temperature`, `max_tokens`, `tools` and the like are ignored
  (the agent has its own tools and settings).
"""


def _answer_headers(chat: ChatTurn, url: str) -> dict[str, str]:
    return {
        SESSION_HEADER: str(chat.session.id),
        "X-Turn-Id": str(chat.turn.id),
        "Link": f'<{url}>; rel="events"',
    }


@router.get(
    "/models",
    response_model=ModelList,
    summary="The models the daemons' providers offer, as OpenAI model ids",
    responses=openai_error_responses(401, 403, 502, 503, 504),
)
async def list_models(chats: ChatsDep, principal: Reader) -> ModelList:
    del principal  # the `read` scope is all it takes
    models = await chats.models()
    return ModelList(
        data=[ModelOut(id=model.id, created=0, owned_by=model.provider) for model in models]
    )


@router.post(
    "/chat/completions",
    dependencies=[audited("chat.completion")],
    summary="Chat Completions, answered by a session's agent",
    description=CHAT_DESCRIPTION,
    response_model=ChatCompletion,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "One `chat.completion`, or with `stream: true` its chunks as SSE",
        },
        **openai_error_responses(400, 401, 403, 404, 409, 413, 415, 429, 502, 503, 504),
    },
)
async def chat_completions(
    body: ChatCompletionRequest,
    chats: ChatsDep,
    turns: TurnsDep,
    settings: SettingsDep,
    principal: Prompter,
    session_id: SessionHeader = None,
) -> Response:
    chat = await chats.start(body.model, body.messages, principal, session_id)
    url = events_url(chat.session.id, chat.turn.id)
    answer = completion_for(chat.turn.id, chat.turn.started_at, chat.model)
    headers = _answer_headers(chat, url)
    events = turns.events(chat.turn.id)
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        shutdown = anyio.Event()
        frames = _chunks(events, shutdown, answer, include_usage, url)
        return event_source(frames, shutdown, ping=settings.sse_ping_seconds, headers=headers)
    ending = await _ending(events)
    if isinstance(ending, ServerStopping):
        return openai_error_response(503, SHUTDOWN_CODE, _shutting_down(url), headers=headers)
    failure = turn_failure(ending, url)
    if failure is not None:
        return openai_error_response(failure.status, failure.code, failure.message, headers=headers)
    return JSONResponse(chat_completion(answer, ending), headers=headers)


async def _chunks(
    events: AsyncIterator[StoredEvent],
    shutdown: anyio.Event,
    answer: Completion,
    include_usage: bool,
    url: str,
) -> AsyncIterator[ServerSentEvent]:
    yield _frame(first_chunk(answer))
    async with aclosing(until_shutdown(events, shutdown)) as items:
        async for item in items:
            if isinstance(item, ServerStopping):
                rest = _shutting_down(f"{url}?after={item.last_seq}")
                yield _frame(openai_error_body(503, SHUTDOWN_CODE, rest))
                yield _frame(DONE)
                return
            for frame in stream_frames(item, answer, include_usage=include_usage, events_url=url):
                yield _frame(frame)


def _shutting_down(where: str) -> str:
    return f"this gateway is shutting down; the turn goes on: read it at {where}"


def _frame(payload: dict[str, Any] | str) -> ServerSentEvent:
    return ServerSentEvent(data=payload if isinstance(payload, str) else json.dumps(payload))


async def _ending(events: AsyncIterator[StoredEvent]) -> StoredEvent | ServerStopping:
    """The turn's terminal event, or `ServerStopping` if this server stops first."""
    shutdown = anyio.Event()
    watcher = asyncio.create_task(watch_shutdown(shutdown))
    try:
        async with aclosing(until_shutdown(events, shutdown)) as items:
            async for item in items:
                if isinstance(item, ServerStopping) or item.name in TERMINAL_EVENTS:
                    return item
    finally:
        await cancel_and_wait(watcher)
    raise RuntimeError("a turn's events ended without its terminal event")
