"""What the agent did, as events: a ten-second turn of the fake's mock streams its tool calls
(with their details where the transport sees them), its reasoning once, and all of it is
stored and replayed like the text."""

from __future__ import annotations

import httpx

from tests.api.test_durable_turns import replay
from tests.api.test_prompt import new_session, stream_prompt, text_of
from tests.sse import SseEvent

KINDS = {"shell", "read", "edit", "write", "search", "plan", "other"}
# The fake's mock, like the real one: one cycle's reasoning (its own text, streamed in parts).
REASONING_START = "Need to find the scroll container"


async def _transport(client: httpx.AsyncClient) -> str:
    transport: str = (await client.get("/readyz")).json()["transport"]
    return transport


def _tools(events: list[SseEvent]) -> list[dict[str, object]]:
    return [event.json() for event in events if event.event == "tool"]


async def test_a_turn_streams_its_tool_calls_with_details(client: httpx.AsyncClient) -> None:
    session = await new_session(client, title="tools", model="ten-second-stream")
    response, events = await stream_prompt(client, session["id"], "write a haiku")
    assert response.status_code == 200 and events[-1].event == "turn.completed"
    tools = _tools(events)
    assert {tool["name"] for tool in tools} >= {"read", "grep", "edit", "bash"}
    for tool in tools:
        assert set(tool) == {"call_id", "name", "status", "kind", "detail", "error"}
        assert tool["kind"] in KINDS and tool["status"] in ("running", "completed")
        assert isinstance(tool["call_id"], str) and tool["call_id"]
    kinds = {tool["name"]: tool["kind"] for tool in tools}
    assert kinds["bash"] == "shell" and kinds["edit"] == "edit" and kinds["grep"] == "search"
    shell = next(t for t in tools if t["name"] == "bash" and t["status"] == "completed")
    edit = next(t for t in tools if t["name"] == "edit" and t["status"] == "completed")
    if await _transport(client) == "daemon":
        assert shell["detail"] == {
            "command": "node scripts/simulate-stream-burst.mjs",
            "cwd": "/tmp/paseo-mock-load",
            "output": shell["detail"]["output"],  # type: ignore[index]
            "exit_code": 0,
        }
        assert "drag-end" in shell["detail"]["output"]  # type: ignore[index]
        detail = edit["detail"]
        assert isinstance(detail, dict)
        assert detail["path"] == "packages/app/src/hooks/use-scroll-anchor.ts"
        assert detail["old_string"] == "const NEAR_BOTTOM_PX = 80;"
        assert detail["new_string"] == "const NEAR_BOTTOM_PX = 160;"
        assert detail["diff"].startswith("diff --git a/packages/app/src/hooks/use-scroll-anchor")
        read = next(t for t in tools if t["name"] == "read" and t["status"] == "completed")
        assert "ConversationList" in read["detail"]["content"]  # type: ignore[index]
        # every state of one call shares its id; the ids are Paseo's
        assert len({t["call_id"] for t in tools if t["name"] == "bash"}) == len(
            {t["call_id"] for t in tools if t["name"] == "bash" and t["status"] == "completed"}
        )
    else:  # `attach` prints `[Tool: name] status` and nothing more
        assert shell["detail"] == {} and edit["detail"] == {} and shell["error"] is None

    # reasoning streams once per cycle, not again: each cycle's parts add up to its text
    reasoning = "".join(e.json()["delta"] for e in events if e.event == "reasoning")
    cycles = text_of(events).count("## Cycle ")
    assert reasoning.count(REASONING_START) <= cycles
    assert reasoning.count(REASONING_START) >= 1

    # stored: a replay of the turn is exactly what was streamed, tools included
    again = await replay(client, session["id"], response.headers["x-turn-id"])
    assert [(e.id, e.event, e.data) for e in again] == [(e.id, e.event, e.data) for e in events]


async def test_todo_updates_are_their_own_event(client: httpx.AsyncClient) -> None:
    session = await new_session(client, title="todos")
    response, events = await stream_prompt(client, session["id"], "emit 3 agent stream updates")
    assert response.status_code == 200 and events[-1].event == "turn.completed"
    todos = [event.json() for event in events if event.event == "todo"]
    assert todos and not any(e.json().get("kind") == "todo" for e in events if e.event == "notice")
    for todo in todos:
        assert set(todo) == {"items", "completed", "total"} and todo["total"] == 1
    if await _transport(client) == "daemon":
        assert [todo["items"] for todo in todos] == [
            [{"text": f"stress-update-{i}", "done": i % 2 == 0}] for i in range(3)
        ]
    else:  # `[Todo] 1/1 completed`: the counts only
        assert all(todo["items"] is None for todo in todos)
        assert {todo["completed"] for todo in todos} <= {0, 1}
