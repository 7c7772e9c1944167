"""A turn's stored events in OpenAI's terms: `chat.completion.chunk`s while it streams, one
`chat.completion` at its end, and OpenAI's error shape for a turn that did not complete.

Only `text` has a place in a chunk (`delta.content`). Reasoning, tool activity, notices and
permission requests do not, so they are left out; the turn's events URL has them all.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.api.openai_errors import openai_error_body
from app.schemas_openai import ChatChoice, ChatCompletion, ChatCompletionMessage
from app.services.turn.events import StoredEvent
from app.services.turn.states import TERMINAL_EVENTS

DONE = "[DONE]"

# The status a non-streamed answer gets for a turn that ended without completing (a streamed
# one has said 200 already, and sends the error as its last chunk instead).
FAILURE_STATUS = {
    "turn.failed": 502,
    "turn.timed_out": 504,
    "turn.cancelled": 409,
    "turn.interrupted": 409,
    "turn.permission": 409,
}
FAILURE_CODE = {
    "turn.failed": "turn_failed",
    "turn.timed_out": "turn_timed_out",
    "turn.cancelled": "turn_cancelled",
    "turn.interrupted": "turn_interrupted",
    "turn.permission": "turn_interrupted",
}


@dataclass(frozen=True)
class Completion:
    """What every chunk of one answer repeats."""

    id: str
    created: int
    model: str


@dataclass(frozen=True)
class TurnFailure:
    status: int
    code: str
    message: str

    def body(self) -> dict[str, Any]:
        return openai_error_body(self.status, self.code, self.message)


def completion_for(turn_id: uuid.UUID, started_at: datetime, model: str) -> Completion:
    return Completion(f"chatcmpl-{turn_id}", int(started_at.timestamp()), model)


def openai_usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """The turn's token counts as OpenAI names them (None when Paseo reported none)."""
    if not usage:
        return None
    prompt = int(usage.get("input_tokens") or 0)
    completion = int(usage.get("output_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": int(usage.get("cached_tokens") or 0)},
    }


def chunk(
    answer: Completion,
    delta: dict[str, Any],
    finish_reason: str | None = None,
) -> dict[str, Any]:
    return {
        "id": answer.id,
        "object": "chat.completion.chunk",
        "created": answer.created,
        "model": answer.model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }


def first_chunk(answer: Completion) -> dict[str, Any]:
    """Sent as soon as the turn has started: who speaks, before any text."""
    return chunk(answer, {"role": "assistant", "content": ""})


def turn_failure(event: StoredEvent, events_url: str) -> TurnFailure | None:
    """None for a completed turn; what went wrong for any other ending."""
    if event.name == "turn.completed":
        return None
    data = event.data
    why = data.get("message") or data.get("status") or event.name
    return TurnFailure(
        FAILURE_STATUS.get(event.name, 502),
        str(data.get("error_code") or FAILURE_CODE.get(event.name, "turn_failed")),
        f"the turn ended {data.get('status') or event.name}: {why} (its events: {events_url})",
    )


def stream_frames(
    event: StoredEvent, answer: Completion, *, include_usage: bool, events_url: str
) -> list[dict[str, Any] | str]:
    """The `data:` payloads one stored event becomes (nothing for events without a place)."""
    if event.name == "text":
        return [chunk(answer, {"content": event.data.get("delta", "")})]
    if event.name not in TERMINAL_EVENTS:
        return []
    failure = turn_failure(event, events_url)
    if failure is not None:
        return [failure.body(), DONE]
    frames: list[dict[str, Any] | str] = [chunk(answer, {}, "stop")]
    if include_usage:
        usage = openai_usage(event.data.get("usage"))
        frames.append({**chunk(answer, {}), "choices": [], "usage": usage})
    frames.append(DONE)
    return frames


def chat_completion(answer: Completion, ending: StoredEvent) -> dict[str, Any]:
    """The whole answer of a completed turn."""
    message = ChatCompletionMessage(content=ending.data.get("final_text") or "")
    return ChatCompletion(
        id=answer.id,
        created=answer.created,
        model=answer.model,
        choices=[ChatChoice(message=message)],
        usage=openai_usage(ending.data.get("usage")),
    ).model_dump(mode="json")
