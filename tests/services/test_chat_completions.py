"""How an OpenAI chat request becomes a session's prompt, and a turn's events OpenAI chunks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from app.api.openai_chunks import (
    DONE,
    chat_completion,
    completion_for,
    openai_usage,
    stream_frames,
    turn_failure,
)
from app.errors import InvalidInput
from app.schemas_openai import ChatMessage, ContentPart
from app.services.chat_completions import (
    ModelChoice,
    first_prompt,
    newest_user_message,
    parse_model_id,
)
from app.services.turn.events import StoredEvent

URL = "/sessions/s/turns/t/events"
ANSWER = completion_for(uuid.UUID(int=7), datetime(2026, 12, 2, tzinfo=UTC), "mock/fast")


def _message(role: str, content: str | list[ContentPart] | None) -> ChatMessage:
    return ChatMessage.model_validate({"role": role, "content": content})


@pytest.mark.parametrize(
    ("model_id", "choice"),
    [
        ("mock/ten-second-stream", ModelChoice("mock", "ten-second-stream")),
        ("claude", ModelChoice("claude", None)),
        ("codex/gpt-5.1:high", ModelChoice("codex", "gpt-5.1:high")),
    ],
)
def test_a_model_id_names_a_provider_and_maybe_a_model(model_id: str, choice: ModelChoice) -> None:
    assert parse_model_id(model_id) == choice
    assert choice.id == model_id


@pytest.mark.parametrize("model_id", ["Mock", "-x", "mock/", "mock/--flag", "a b", "mock/a b"])
def test_a_model_id_that_could_not_reach_paseo_is_refused(model_id: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_model_id(model_id)
    assert raised.value.extra["field"] == "model"


def test_a_lone_user_message_is_sent_as_it_is() -> None:
    assert first_prompt([_message("user", "  fix the test\n")]) == "  fix the test\n"


def test_a_conversation_becomes_instructions_transcript_and_the_newest_message() -> None:
    messages = [
        _message("system", "Be brief."),
        _message("user", "What is 2+2?"),
        _message("assistant", "4"),
        _message("assistant", None),  # an answer that only called tools
        _message("developer", "Answer in French."),
        _message("user", [ContentPart(type="text", text="And 3+3?")]),
    ]
    assert first_prompt(messages) == (
        "Be brief.\n\nAnswer in French.\n\n"
        "The conversation so far:\n\nUser: What is 2+2?\n\nAssistant: 4\n\n"
        "Reply to the user's newest message:\n\nAnd 3+3?"
    )


def test_instructions_without_history_come_before_the_message() -> None:
    messages = [_message("system", "Be brief."), _message("user", "Hi")]
    assert first_prompt(messages) == "Be brief.\n\nHi"


def test_an_existing_session_gets_only_the_newest_user_message() -> None:
    parts = [ContentPart(type="text", text="a"), ContentPart(type="text", text="b")]
    messages = [_message("user", "old"), _message("assistant", "reply"), _message("user", parts)]
    assert newest_user_message(messages) == "ab"


def test_the_last_message_must_be_the_users() -> None:
    with pytest.raises(InvalidInput) as raised:
        newest_user_message([_message("user", "q"), _message("assistant", "a")])
    assert raised.value.extra["field"] == "messages[1].role"


def test_text_and_image_parts_are_read_and_other_parts_refused() -> None:
    text = ContentPart.model_validate({"type": "text", "text": "look"})
    image = ContentPart.model_validate({"type": "image_url", "image_url": {"url": "x"}})
    audio = ContentPart.model_validate({"type": "input_audio"})
    assert newest_user_message([_message("user", [text, image])]) == "look"
    with pytest.raises(InvalidInput) as raised:
        newest_user_message([_message("user", [text, audio])])
    assert "input_audio" in raised.value.detail
    assert raised.value.extra["field"] == "messages[0].content"


def test_text_becomes_a_content_delta_and_other_events_nothing() -> None:
    text = StoredEvent(3, "text", {"delta": "hel"})
    [frame] = stream_frames(text, ANSWER, include_usage=False, events_url=URL)
    assert isinstance(frame, dict)
    assert frame["object"] == "chat.completion.chunk"
    assert frame["id"] == f"chatcmpl-{uuid.UUID(int=7)}" and frame["model"] == "mock/fast"
    assert frame["choices"][0]["delta"] == {"content": "hel"}
    assert frame["choices"][0]["finish_reason"] is None
    for name in ("reasoning", "tool", "notice", "turn.permission_requested", "turn.started"):
        event = StoredEvent(4, name, {"delta": "x", "name": "bash"})
        assert stream_frames(event, ANSWER, include_usage=True, events_url=URL) == []


USAGE = {"input_tokens": 5, "output_tokens": 7, "cached_tokens": 2, "cost_usd": 0.0}
COMPLETED = StoredEvent(
    9, "turn.completed", {"status": "completed", "final_text": "hi", "usage": USAGE}
)


def test_a_completed_turn_stops_then_gives_usage_when_asked_then_done() -> None:
    stop, usage, done = stream_frames(COMPLETED, ANSWER, include_usage=True, events_url=URL)
    assert isinstance(stop, dict) and isinstance(usage, dict)
    assert stop["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == []
    assert usage["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 7,
        "total_tokens": 12,
        "prompt_tokens_details": {"cached_tokens": 2},
    }
    assert done == DONE
    assert len(stream_frames(COMPLETED, ANSWER, include_usage=False, events_url=URL)) == 2


def test_the_whole_answer_carries_the_final_text_and_usage() -> None:
    answer = chat_completion(ANSWER, COMPLETED)
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "hi"}
    assert answer["usage"] == openai_usage(USAGE)
    assert openai_usage(None) is None


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("turn.failed", 502, "agent_failed"),
        ("turn.timed_out", 504, "turn_timed_out"),
        ("turn.cancelled", 409, "turn_cancelled"),
        ("turn.interrupted", 409, "replaced"),
    ],
)
def test_a_turn_that_did_not_complete_is_an_openai_error(name: str, status: int, code: str) -> None:
    data = {"status": name.removeprefix("turn."), "message": "it stopped", "final_text": "par"}
    if name in ("turn.failed", "turn.interrupted"):
        data["error_code"] = code
    event = StoredEvent(5, name, data)
    failure = turn_failure(event, URL)
    assert failure is not None
    assert (failure.status, failure.code) == (status, code)
    assert "it stopped" in failure.message and URL in failure.message
    error, done = stream_frames(event, ANSWER, include_usage=True, events_url=URL)
    assert isinstance(error, dict) and done == DONE
    assert error["error"]["code"] == code
    assert error["error"]["type"] == ("server_error" if status >= 500 else "invalid_request_error")
    assert turn_failure(COMPLETED, URL) is None
