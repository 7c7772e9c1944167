"""A turn as items (`GET /sessions/{id}/turns/{turn_id}/items`) against the fake's ten-second
mock, whose cycles call read, grep, edit and bash: the same items while it runs (so far) and
once it has ended, what folding the stored events gives, the session's usage summed, and the
same items from a new gateway over the same database."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx

from app.main import create_app
from app.services.turn.events import StoredEvent
from app.services.turn.items import fold_items
from app.settings import Settings
from tests.api.conftest import AUTH, TEST_ADMIN_KEY, Gateway, empty_database
from tests.api.test_durable_turns import gateway_on, replay
from tests.api.test_prompt import new_session, stream_prompt, text_of
from tests.api.test_sessions import assert_problem
from tests.fakes.harness import FakePaseoDaemon, Hold
from tests.sse import SseEvent, read_events, read_until

TOOL_NAMES = {"read", "grep", "edit", "bash"}


def _url(session_id: str, turn_id: str) -> str:
    return f"/sessions/{session_id}/turns/{turn_id}/items"


async def _items(client: httpx.AsyncClient, session_id: str, turn_id: str) -> dict[str, Any]:
    response = await client.get(_url(session_id, turn_id))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _folded(turn_id: str, prompt: str, events: list[SseEvent]) -> list[dict[str, Any]]:
    """What a client gets by folding the events itself."""
    stored = [StoredEvent(int(e.id or 0), e.event, e.json()) for e in events]
    return fold_items(uuid.UUID(turn_id), prompt, stored)


async def _transport(client: httpx.AsyncClient) -> str:
    transport: str = (await client.get("/readyz")).json()["transport"]
    return transport


def _check_numbers(turn_id: str, items: list[dict[str, Any]]) -> None:
    """Ids are `<turn_id>:<first_seq>`, items come in the order they first appeared."""
    for item in items:
        assert item["id"] == f"{turn_id}:{item['first_seq']}"
        assert item["first_seq"] <= item["last_seq"]
    firsts = [item["first_seq"] for item in items]
    assert firsts == sorted(firsts) and len(set(firsts)) == len(firsts)


async def test_a_turn_as_items_while_it_runs_and_once_it_has_ended(
    client: httpx.AsyncClient, hold: Hold
) -> None:
    session = await new_session(client, title="items", model="ten-second-stream")
    prompt = hold.prompt("write a haiku")
    async with client.stream(
        "POST", f"/sessions/{session['id']}/prompt", json={"prompt": prompt}
    ) as response:
        assert response.status_code == 200
        turn_id = response.headers["x-turn-id"]
        stream = read_events(response)
        seen = await read_until(stream, "tool")
        # Held: the turn runs until released, so these are its items so far.
        running = await _items(client, session["id"], turn_id)
        async for event in stream:  # a whole cycle (its last call: bash), then its end
            seen.append(event)
            if event.event == "tool" and event.json()["name"] == "bash":
                hold.release()
            if event.event == "turn.completed":
                break

    assert running["status"] == "running" and running["turn_id"] == turn_id
    assert running["session_id"] == session["id"]
    assert running["items"][0] == {
        "id": f"{turn_id}:1",
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": prompt}],
        "first_seq": 1,
        "last_seq": 1,
    }
    assert "tool_call" in {item["type"] for item in running["items"]}
    assert running["items"][-1]["type"] != "usage"

    events = await replay(client, session["id"], turn_id)
    assert [(e.id, e.event) for e in events] == [(e.id, e.event) for e in seen]
    # Going on live from `last_seq` and folding gives the same as reading items again.
    assert running["items"] == _folded(turn_id, prompt, events[: running["last_seq"]])

    ended = await _items(client, session["id"], turn_id)
    items = ended["items"]
    assert ended["status"] == "completed" and ended["last_seq"] == int(events[-1].id or 0)
    assert items == _folded(turn_id, prompt, events)
    assert {item["id"] for item in running["items"]} <= {item["id"] for item in items}
    _check_numbers(turn_id, items)

    types = [item["type"] for item in items]
    assert types[0] == "message" and types[-1] == "usage"
    assert {"reasoning", "tool_call"} <= set(types)
    replies = [i["content"][0]["text"] for i in items if i.get("role") == "assistant"]
    assert len(replies) >= 2  # the cycle's text is split by its reasoning and tool calls
    assert "".join(replies) == text_of(events) == events[-1].json()["final_text"]
    for item in items:
        if item["type"] == "message":
            assert {p["type"] for p in item["content"]} == {
                "input_text" if item["role"] == "user" else "output_text"
            }

    calls = [item for item in items if item["type"] == "tool_call"]
    tool_events = [e.json() for e in events if e.event == "tool"]
    assert len(calls) == len({tool["call_id"] for tool in tool_events})  # one per call
    assert {call["name"] for call in calls} >= TOOL_NAMES
    for call in calls:
        assert set(call) == {
            "id", "type", "call_id", "name", "kind", "status", "detail", "error", "first_seq",
            "last_seq",
        }  # fmt: skip
        states = [tool for tool in tool_events if tool["call_id"] == call["call_id"]]
        assert call["status"] == states[-1]["status"] == "completed"
    if await _transport(client) == "daemon":
        read = next(call for call in calls if call["name"] == "read")
        # the running state's path kept, the completed state's content added
        assert read["detail"]["path"] and "ConversationList" in read["detail"]["content"]
        shell = next(call for call in calls if call["name"] == "bash")
        assert shell["kind"] == "shell" and shell["detail"]["exit_code"] == 0
    else:  # `attach` shows names and states only
        assert all(call["detail"] == {} for call in calls)

    # The turn's usage, last; the context window where Paseo reports it (the daemon).
    turn = (await client.get(f"/sessions/{session['id']}/turns/{turn_id}")).json()
    usage = items[-1]
    assert {key: usage[key] for key in turn["usage"]} == turn["usage"]
    assert usage["output_tokens"] > 0
    if await _transport(client) == "daemon":
        assert usage["context_window_max_tokens"] == 128_000
        assert usage["context_window_used_tokens"] > 0
    else:  # `inspect` does not say
        assert "context_window_used_tokens" not in usage

    # ... and the session's running total counts it.
    detail = (await client.get(f"/sessions/{session['id']}")).json()
    assert detail["usage"] == {
        "turns": 1,
        "input_tokens": turn["usage"]["input_tokens"] or 0,
        "output_tokens": turn["usage"]["output_tokens"],
        "cached_tokens": turn["usage"]["cached_tokens"] or 0,
        "cost_usd": turn["usage"]["cost_usd"] or 0,
    }


async def test_items_are_read_like_the_turn_and_its_events(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    session = await new_session(client, title="items access")
    response, events = await stream_prompt(
        client, session["id"], "emit 3 coalesced agent stream updates"
    )
    assert events[-1].event == "turn.completed"
    turn_id = response.headers["x-turn-id"]
    url = _url(session["id"], turn_id)
    items = await _items(client, session["id"], turn_id)
    assert items["items"][1]["content"][0]["text"] == text_of(events)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as anonymous:
        assert_problem(await anonymous.get(url), 401, "unauthorized")
        # a read key, as for the turn itself (a stream token opens only the events)
        token = response.headers["x-stream-token"]
        assert_problem(await anonymous.get(url, params={"token": token}), 401, "unauthorized")
    assert_problem(await client.get(_url(session["id"], str(uuid.uuid4()))), 404, "turn_not_found")
    assert_problem(await client.get(_url(str(uuid.uuid4()), turn_id)), 404, "session_not_found")
    other = await new_session(client, title="another")
    assert_problem(await client.get(_url(other["id"], turn_id)), 404, "turn_not_found")
    assert_problem(await client.get(_url(session["id"], "nope")), 422, "validation_failed")
    detail = (await client.get(f"/sessions/{other['id']}")).json()
    assert detail["usage"] == {
        "turns": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "cached_tokens": 0,
        "cost_usd": 0,
    }


async def test_a_new_gateway_on_the_same_database_gives_the_same_items(
    fake_daemon: FakePaseoDaemon, agent_cwd: Path, tmp_path: Path
) -> None:
    """Items come from storage: the turn's gateway stopped, a new app instance (in-process,
    without Paseo) over its database answers the same."""
    with empty_database("sqlite", tmp_path) as url:
        with gateway_on(url, fake_daemon, agent_cwd, tmp_path / "first") as first:
            async with httpx.AsyncClient(base_url=first.url, headers=AUTH, timeout=60) as client:
                session = await new_session(client, model="ten-second-stream")
                response, events = await stream_prompt(client, session["id"], "write a haiku")
                assert events[-1].event == "turn.completed"
                turn_id = response.headers["x-turn-id"]
                before = await _items(client, session["id"], turn_id)
                usage_before = (await client.get(f"/sessions/{session['id']}")).json()["usage"]
        settings = Settings(
            database_url=url,
            admin_key=TEST_ADMIN_KEY,
            paseo_bin=str(tmp_path / "no-paseo"),
            default_cwd=tmp_path,
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://gateway", headers=AUTH
            ) as client:
                after = await _items(client, session["id"], turn_id)
                turns = (await client.get(f"/sessions/{session['id']}/turns")).json()
    assert after == before
    assert {"tool_call", "usage"} <= {item["type"] for item in after["items"]}
    assert usage_before["turns"] == 1 and usage_before["output_tokens"] > 0
    assert turns["items"][0]["usage"]["output_tokens"] == usage_before["output_tokens"]
