"""The OpenAI-compatible routes, driven by OpenAI's own Python client against a live gateway
(both transports, both databases: the shared `gateway` fixture)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.api.conftest import AUTH, TEST_ADMIN_KEY, Gateway
from tests.fakes.harness import Hold

INSTANT = "emit 3 coalesced agent stream updates"
INSTANT_REPLY = "stress-update-0stress-update-1stress-update-2"
FAST = "mock/ten-second-stream"
LONG = "mock/one-minute-stream"


@pytest.fixture
def ai(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=TEST_ADMIN_KEY, max_retries=0) as ai:
        yield ai


@pytest.fixture
def http(gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, headers=AUTH, timeout=60) as http:
        yield http


def _user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def _ids(headers: httpx.Headers) -> tuple[str, str]:
    """The session and turn an answer names."""
    return headers["x-paseo-session"], headers["x-turn-id"]


def _turns(http: httpx.Client, session_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = http.get(f"/sessions/{session_id}/turns").json()["items"]
    return items


def _until_ended(http: httpx.Client, session_id: str, turn_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        turn: dict[str, Any] = http.get(f"/sessions/{session_id}/turns/{turn_id}").json()
        if turn["status"] not in ("queued", "running", "waiting_permission"):
            return turn
        time.sleep(0.1)
    raise AssertionError(f"turn {turn_id} did not end")


def test_models_are_the_providers_models(ai: openai.OpenAI) -> None:
    models = {model.id: model for model in ai.models.list()}
    assert {FAST, LONG, "mock/five-minute-stream"} <= set(models)
    assert models[FAST].owned_by == "mock" and models[FAST].object == "model"


def test_a_completion_is_a_stored_turn_of_a_new_session(
    ai: openai.OpenAI, http: httpx.Client
) -> None:
    raw = ai.chat.completions.with_raw_response.create(model=FAST, messages=_user(INSTANT))
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == INSTANT_REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == FAST
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    session_id, turn_id = _ids(raw.headers)
    assert completion.id == f"chatcmpl-{turn_id}"
    session = http.get(f"/sessions/{session_id}").json()
    assert (session["provider"], session["model"]) == ("mock", "ten-second-stream")
    [turn] = _turns(http, session_id)
    assert turn["id"] == turn_id and turn["prompt"] == INSTANT
    assert turn["status"] == "completed" and turn["final_text"] == INSTANT_REPLY
    events_url = raw.headers["link"].split(">")[0].lstrip("<")
    replay = http.get(events_url).text
    assert "event: turn.completed" in replay and INSTANT_REPLY in replay


def test_a_streamed_completion_arrives_as_the_agent_writes(
    ai: openai.OpenAI, http: httpx.Client
) -> None:
    with ai.chat.completions.with_streaming_response.create(
        model=FAST,
        messages=_user("write a haiku"),
        stream=True,
        stream_options={"include_usage": True},
    ) as response:
        session_id, turn_id = _ids(response.headers)
        chunks = list(response.parse())
    assert chunks[0].choices[0].delta.role == "assistant"
    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
    assert {chunk.id for chunk in chunks} == {f"chatcmpl-{turn_id}"}
    texts = [chunk.choices[0].delta.content for chunk in chunks if chunk.choices]
    assert sum(1 for text in texts if text) > 3  # deltas as produced, not one block
    finish = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices]
    assert finish[-1] == "stop" and finish.count("stop") == 1
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    turn = http.get(f"/sessions/{session_id}/turns/{turn_id}").json()
    assert turn["status"] == "completed"
    assert "".join(text or "" for text in texts) == turn["final_text"]
    assert turn["final_text"].endswith("_(end of synthetic stream)_\n")


def test_a_follow_up_goes_to_the_same_agent_with_only_the_newest_message(
    ai: openai.OpenAI, http: httpx.Client
) -> None:
    conversation = [
        {"role": "system", "content": "You answer tersely."},
        {"role": "user", "content": INSTANT},
    ]
    first = ai.chat.completions.with_raw_response.create(model=FAST, messages=conversation)
    session_id = first.headers["x-paseo-session"]
    [opening] = _turns(http, session_id)
    assert opening["prompt"] == f"You answer tersely.\n\n{INSTANT}"
    agent_id = http.get(f"/sessions/{session_id}").json()["agent_id"]
    conversation += [
        {"role": "assistant", "content": first.parse().choices[0].message.content},
        {"role": "user", "content": "emit 2 coalesced agent stream updates"},
    ]
    second = ai.chat.completions.with_raw_response.create(
        model=FAST, messages=conversation, extra_headers={"X-Paseo-Session": session_id}
    )
    assert second.headers["x-paseo-session"] == session_id
    assert second.parse().choices[0].message.content == "stress-update-0stress-update-1"
    turns = _turns(http, session_id)
    assert [turn["prompt"] for turn in turns] == [
        opening["prompt"],
        "emit 2 coalesced agent stream updates",
    ]
    assert http.get(f"/sessions/{session_id}").json()["agent_id"] == agent_id


def test_a_second_request_while_the_turn_runs_is_409_and_a_cancel_ends_the_stream(
    ai: openai.OpenAI, http: httpx.Client, hold: Hold
) -> None:
    """The turn runs until cancelled (`hold`), however slow the requests before that are."""
    with ai.chat.completions.with_streaming_response.create(
        model=LONG, messages=_user(hold.prompt("long work")), stream=True
    ) as response:
        session_id, turn_id = _ids(response.headers)
        with pytest.raises(openai.ConflictError) as busy:
            ai.chat.completions.create(
                model=LONG,
                messages=_user(INSTANT),
                extra_headers={"X-Paseo-Session": session_id},
            )
        error = _error_of(busy.value)
        assert error["code"] == "turn_in_progress" and error["type"] == "invalid_request_error"
        assert turn_id in error["message"]
        assert http.post(f"/sessions/{session_id}/cancel").status_code == 200
        with pytest.raises(openai.APIError) as ended:
            list(response.parse())
    assert isinstance(ended.value.body, dict) and ended.value.body["code"] == "turn_cancelled"
    assert _until_ended(http, session_id, turn_id)["status"] == "cancelled"


def test_a_client_that_goes_away_does_not_cancel_the_turn(
    ai: openai.OpenAI, http: httpx.Client
) -> None:
    with ai.chat.completions.with_streaming_response.create(
        model=FAST, messages=_user("write a haiku"), stream=True
    ) as response:
        session_id, turn_id = _ids(response.headers)
        for chunk in response.parse():
            if chunk.choices and chunk.choices[0].delta.content:
                break  # the client leaves mid-answer
    turn = _until_ended(http, session_id, turn_id)
    assert turn["status"] == "completed"
    assert turn["final_text"].endswith("_(end of synthetic stream)_\n")


@pytest.mark.parametrize(
    ("model", "error", "code"),
    [
        ("mock/no-such-model", openai.NotFoundError, "model_not_found"),
        ("nonesuch", openai.NotFoundError, "model_not_found"),
        ("not a model", openai.BadRequestError, "invalid_input"),
    ],
)
def test_a_bad_model_id_is_refused_and_starts_nothing(
    ai: openai.OpenAI,
    http: httpx.Client,
    model: str,
    error: type[openai.APIStatusError],
    code: str,
) -> None:
    before = http.get("/sessions", params={"limit": 1}).json()["total"]
    with pytest.raises(error) as raised:
        ai.chat.completions.create(model=model, messages=_user(INSTANT))
    body = _error_of(raised.value)
    assert body["code"] == code and body["param"] == "model"
    assert model in body["message"] or "model id" in body["message"]
    assert http.get("/sessions", params={"limit": 1}).json()["total"] == before


def test_a_session_answers_with_its_own_provider_only(
    ai: openai.OpenAI, http: httpx.Client
) -> None:
    first = ai.chat.completions.with_raw_response.create(model=FAST, messages=_user(INSTANT))
    session_id = first.headers["x-paseo-session"]
    with pytest.raises(openai.BadRequestError) as raised:
        ai.chat.completions.create(
            model="claude", messages=_user(INSTANT), extra_headers={"X-Paseo-Session": session_id}
        )
    assert "mock/ten-second-stream" in _error_of(raised.value)["message"]
    missing = str(uuid.uuid4())
    with pytest.raises(openai.NotFoundError) as unknown:
        ai.chat.completions.create(
            model=FAST, messages=_user(INSTANT), extra_headers={"X-Paseo-Session": missing}
        )
    assert _error_of(unknown.value)["code"] == "session_not_found"
    assert len(_turns(http, session_id)) == 1


@pytest.mark.parametrize("key", [None, "pgw_not-a-key"], ids=["missing", "unknown"])
def test_a_missing_or_unknown_key_is_an_authentication_error(
    gateway: Gateway, key: str | None
) -> None:
    # The client will not go without a key: a missing one is a header it leaves out.
    headers: dict[str, Any] = {"Authorization": openai.omit} if key is None else {}
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key or "unused", max_retries=0) as ai:
        with pytest.raises(openai.AuthenticationError) as raised:
            ai.chat.completions.create(model=FAST, messages=_user(INSTANT), extra_headers=headers)
        error = _error_of(raised.value)
        assert error["type"] == "authentication_error" and error["code"] == "unauthorized"
        assert raised.value.response.headers["www-authenticate"].startswith("Bearer")
        with pytest.raises(openai.AuthenticationError):
            ai.models.list(extra_headers=headers)


def test_a_read_only_key_lists_models_but_cannot_prompt(
    gateway: Gateway, http: httpx.Client
) -> None:
    created = http.post("/keys", json={"name": "reader", "scopes": ["read"]})
    assert created.status_code == 201, created.text
    key = created.json()["secret"]
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0) as ai:
        assert any(model.id == FAST for model in ai.models.list())
        with pytest.raises(openai.PermissionDeniedError) as raised:
            ai.chat.completions.create(model=FAST, messages=_user(INSTANT))
    assert _error_of(raised.value)["code"] == "insufficient_scope"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": FAST, "messages": []}, "messages"),
        ({"model": FAST, "messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role"),
        ({"model": FAST, "messages": _user(INSTANT), "n": 2}, "n"),
        ({"model": FAST, "messages": [{"role": "assistant", "content": "hi"}]}, "messages[0].role"),
        ({"messages": _user(INSTANT)}, "model"),
    ],
)
def test_a_bad_body_is_a_400_in_openais_shape(
    http: httpx.Client, body: dict[str, Any], param: str
) -> None:
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert error["message"]


def test_openais_shape_is_for_v1_only(http: httpx.Client) -> None:
    broken = http.post(
        "/v1/chat/completions", content=b"{", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "malformed_body"
    not_an_object = http.post("/v1/chat/completions", json=["hello"])
    assert not_an_object.status_code == 400
    assert '"messages"' in not_an_object.json()["error"]["message"]
    elsewhere = http.get("/v1/embeddings")
    assert elsewhere.status_code == 404 and elsewhere.json()["error"]["code"] == "route_not_found"
    problem = http.get(f"/sessions/{uuid.uuid4()}")
    assert problem.headers["content-type"] == "application/problem+json"
    assert problem.json()["code"] == "session_not_found"


def _error_of(error: openai.APIStatusError) -> dict[str, Any]:
    """The `error` object of an answer (the client keeps the whole body)."""
    body = error.body
    assert isinstance(body, dict)
    inner = body.get("error", body)
    assert isinstance(inner, dict)
    return inner
