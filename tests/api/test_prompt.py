"""Prompt turns streamed as Server-Sent Events through a real uvicorn, and the turn routes."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.paseo.types import TextDelta
from tests.api.conftest import AUTH, empty_database, gateway_env, start_gateway, stop_gateway
from tests.api.test_sessions import assert_problem
from tests.conftest import release_when
from tests.fakes.harness import FakePaseoDaemon, Hold, running_fake_processes
from tests.paseo.test_cli_attach_gap import FILLED, TIME_SCALE, replayed_turn
from tests.sse import SseEvent, agent_id_in, collect_turn, read_events, read_until

INSTANT = "emit 3 coalesced agent stream updates"
INSTANT_REPLY = "stress-update-0stress-update-1stress-update-2"


async def new_session(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/sessions", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def stream_prompt(
    client: httpx.AsyncClient, session_id: str, prompt: str
) -> tuple[httpx.Response, list[SseEvent]]:
    async with client.stream(
        "POST", f"/sessions/{session_id}/prompt", json={"prompt": prompt}
    ) as response:
        if response.status_code != 200:
            await response.aread()
            return response, []
        return response, await collect_turn(response)


def text_of(events: list[SseEvent]) -> str:
    return "".join(event.json()["delta"] for event in events if event.event == "text")


async def test_first_prompt_streams_the_answer(client: httpx.AsyncClient) -> None:
    session = await new_session(client, title="haiku")
    response, events = await stream_prompt(client, session["id"], "write a haiku")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-store"
    names = [event.event for event in events]
    assert names[0] == "turn.started" and names[1] == "agent.created"
    assert names[-1] == "turn.completed"
    # Deltas as produced, not one block: how many `text` events a stretch of text arrives in
    # depends on how the reads fall (a loaded machine reads several writes at once), but the
    # fake's cycle writes text, then reasoning and tools, then text, tools, text: three
    # stretches of text that only a stream passing them on as they come keeps apart.
    assert [name for name, _ in itertools.groupby(names)].count("text") >= 3
    assert "tool" in names and "reasoning" in names
    ids = [int(event.id or 0) for event in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) and ids[0] == 1
    completed = events[-1].json()
    assert completed["final_text"] == text_of(events)
    assert completed["final_text"].startswith("## Cycle 1")
    assert completed["usage"]["output_tokens"] > 0
    turn_id = response.headers["x-turn-id"]
    assert completed["turn_id"] == turn_id == events[0].json()["turn_id"]

    stored = (await client.get(f"/sessions/{session['id']}/turns/{turn_id}")).json()
    assert stored["status"] == "completed"
    assert stored["final_text"] == completed["final_text"]
    assert stored["prompt"] == "write a haiku" and stored["finished_at"]
    detail = (await client.get(f"/sessions/{session['id']}")).json()
    assert detail["status"] == "active" and detail["agent"]["status"] == "idle"
    assert detail["agent_id"] == events[1].json()["agent_id"]


async def test_second_prompt_gets_only_its_own_output(client: httpx.AsyncClient) -> None:
    session = await new_session(client)
    _, first = await stream_prompt(client, session["id"], INSTANT)
    assert first[-1].json()["final_text"] == INSTANT_REPLY
    _, second = await stream_prompt(client, session["id"], "emit 2 coalesced agent stream updates")
    assert second[-1].event == "turn.completed"
    assert second[-1].json()["final_text"] == "stress-update-0stress-update-1" == text_of(second)
    turns = (await client.get(f"/sessions/{session['id']}/turns")).json()
    assert [turn["number"] for turn in turns["items"]] == [1, 2]
    assert turns["total"] == 2


async def test_prompt_text_is_never_a_flag(client: httpx.AsyncClient) -> None:
    session = await new_session(client)
    await stream_prompt(client, session["id"], INSTANT)
    prompt = "--prompt-file=/etc/passwd -- --host evil\nemit 1 coalesced agent stream updates"
    _, events = await stream_prompt(client, session["id"], prompt)
    assert events[-1].json()["final_text"] == "stress-update-0"
    turns = (await client.get(f"/sessions/{session['id']}/turns")).json()["items"]
    assert turns[-1]["prompt"] == prompt


async def test_second_prompt_while_running_is_409(client: httpx.AsyncClient, hold: Hold) -> None:
    """The turn runs until cancelled (`hold`), however slow the requests before that are."""
    session = await new_session(client, model="one-minute-stream", provider="mock")
    async with client.stream(
        "POST", f"/sessions/{session['id']}/prompt", json={"prompt": hold.prompt("long work")}
    ) as running:
        assert running.status_code == 200
        turn_id = running.headers["x-turn-id"]
        busy = await client.post(f"/sessions/{session['id']}/prompt", json={"prompt": INSTANT})
        problem = assert_problem(busy, 409, "turn_in_progress")
        assert problem["turn_id"] == turn_id
        assert busy.headers["retry-after"]
        detail = (await client.get(f"/sessions/{session['id']}")).json()
        assert detail["active_turn"]["id"] == turn_id
        cancel = await client.post(f"/sessions/{session['id']}/cancel")
        assert cancel.status_code == 200, cancel.text  # Paseo confirmed the stop in time
        assert cancel.json()["confirmed"] is True
        assert cancel.json()["turn"]["id"] == turn_id
        assert cancel.json()["turn"]["status"] == "cancelled"
        events = await collect_turn(running)
    assert events[-1].event == "turn.cancelled"
    stored = (await client.get(f"/sessions/{session['id']}/turns/{turn_id}")).json()
    assert stored["status"] == "cancelled"
    agent_id = agent_id_in(events)
    agent = (await client.get(f"/agents/{agent_id}")).json()
    assert agent["status"] == "idle"


async def test_cancel_without_a_running_turn_is_409(client: httpx.AsyncClient) -> None:
    session = await new_session(client)
    assert_problem(await client.post(f"/sessions/{session['id']}/cancel"), 409, "no_running_turn")
    missing = uuid.uuid4()
    assert_problem(await client.post(f"/sessions/{missing}/cancel"), 404, "session_not_found")


async def test_disconnect_does_not_cancel_the_turn(client: httpx.AsyncClient) -> None:
    session = await new_session(client)
    async with client.stream(
        "POST", f"/sessions/{session['id']}/prompt", json={"prompt": "write a haiku"}
    ) as response:
        turn_id = response.headers["x-turn-id"]
        await read_until(read_events(response), "text")  # the client goes away mid-answer
    deadline = time.monotonic() + 120  # generous: a loaded machine
    while True:
        turn = (await client.get(f"/sessions/{session['id']}/turns/{turn_id}")).json()
        if turn["status"] != "running" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert turn["status"] == "completed"
    assert turn["final_text"].endswith("_(end of synthetic stream)_\n")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"prompt": ""}, 422, "invalid_input"),
        ({"prompt": " \n\t"}, 422, "invalid_input"),
        ({"prompt": "a\u0000b"}, 422, "validation_failed"),
        ({}, 422, "validation_failed"),
        ({"prompt": 5}, 422, "validation_failed"),
        ({"prompt": "x" * (1024 * 1024 + 1)}, 413, "payload_too_large"),
    ],
)
async def test_bad_prompts(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, code: str
) -> None:
    session = await new_session(client)
    assert_problem(await client.post(f"/sessions/{session['id']}/prompt", json=body), status, code)


async def test_prompt_errors_before_streaming(client: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    assert_problem(
        await client.post(f"/sessions/{missing}/prompt", json={"prompt": INSTANT}),
        404,
        "session_not_found",
    )
    closed = await new_session(client)
    await client.delete(f"/sessions/{closed['id']}")
    assert_problem(
        await client.post(f"/sessions/{closed['id']}/prompt", json={"prompt": INSTANT}),
        409,
        "session_closed",
    )
    before = (await client.get("/sessions")).json()["total"]
    problem = assert_problem(
        await client.post("/sessions", json={"provider": "nosuch", "prompt": INSTANT}),
        422,
        "invalid_input",
    )
    # Refused at create, with what the daemon has, and nothing stored.
    assert "nosuch" in problem["detail"] and "mock" in problem["detail"]
    assert (await client.get("/sessions")).json()["total"] == before
    unavailable = await client.post("/sessions", json={"provider": "codex"})
    assert "unavailable" in assert_problem(unavailable, 422, "invalid_input")["detail"]


async def test_turn_routes_errors(client: httpx.AsyncClient) -> None:
    session = await new_session(client)
    other = await new_session(client)
    _, events = await stream_prompt(client, session["id"], INSTANT)
    turn_id = events[0].json()["turn_id"]
    assert_problem(
        await client.get(f"/sessions/{other['id']}/turns/{turn_id}"), 404, "turn_not_found"
    )
    assert_problem(
        await client.get(f"/sessions/{session['id']}/turns/{uuid.uuid4()}"), 404, "turn_not_found"
    )
    assert_problem(
        await client.get(f"/sessions/{session['id']}/turns", params={"limit": 0}),
        422,
        "validation_failed",
    )


async def test_close_session_archives_its_agent(client: httpx.AsyncClient) -> None:
    session = await new_session(client)
    _, events = await stream_prompt(client, session["id"], INSTANT)
    agent_id = events[1].json()["agent_id"]
    closed = await client.delete(f"/sessions/{session['id']}")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    agent = (await client.get(f"/agents/{agent_id}")).json()
    assert agent["archived"] is True


async def test_close_while_running_needs_force(client: httpx.AsyncClient, hold: Hold) -> None:
    """The turn runs until the forced close ends it (`hold`)."""
    session = await new_session(client, model="one-minute-stream", provider="mock")
    async with client.stream(
        "POST", f"/sessions/{session['id']}/prompt", json={"prompt": hold.prompt("long work")}
    ) as running:
        stream = read_events(running)
        await read_until(stream, "text")
        busy = await client.delete(f"/sessions/{session['id']}")
        assert_problem(busy, 409, "agent_running")
        forced = await client.delete(f"/sessions/{session['id']}", params={"force": "true"})
        assert forced.status_code == 200 and forced.json()["status"] == "closed"
        last = [event async for event in stream][-1]
    # Archiving with force interrupts the run: the turn ends as cancelled, not hangs.
    assert last.event == "turn.cancelled"


async def test_a_first_prompt_keeps_what_the_cli_attach_lost(
    agent_cwd: Path, tmp_path: Path, hold: Hold
) -> None:
    """The CLI transport: attach joins the first turn running and loses the live events that
    came with its replay (FAKE_PASEO_ATTACH_DROP, read by the gateway's CLI children). The
    streamed and the stored answer are still the whole transcript, and no notice says
    otherwise. The turn runs until the gateway filled the hole (`hold`), then ends."""
    prompt = hold.prompt("review it")
    with (
        FakePaseoDaemon(tmp_path / "home", time_scale=TIME_SCALE) as daemon,
        empty_database("sqlite", tmp_path) as url,
    ):
        env = gateway_env(
            url, daemon, agent_cwd, PASEO_GATEWAY_TRANSPORT="cli", FAKE_PASEO_ATTACH_DROP="2"
        )
        gateway = start_gateway(tmp_path / "gateway", env)
        try:
            async with httpx.AsyncClient(headers=AUTH, base_url=gateway.url, timeout=60) as client:
                session = await new_session(client, provider="mock", model="ten-second-stream")
                releaser = asyncio.create_task(release_when(hold, lambda: FILLED in gateway.log()))
                response, events = await stream_prompt(client, session["id"], prompt)
                await releaser
                turn_id = response.headers["x-turn-id"]
                stored = (await client.get(f"/sessions/{session['id']}/turns/{turn_id}")).json()
        finally:
            stop_gateway(gateway)
        transcript = await replayed_turn(daemon, agent_id_in(events), prompt)
        assert running_fake_processes(home=daemon.home) == []
    assert events[-1].event == "turn.completed"
    final_text = events[-1].json()["final_text"]
    assert final_text == text_of(events) == stored["final_text"]
    assert final_text == "".join(item.text for item in transcript if isinstance(item, TextDelta))
    assert not [e for e in events if e.event == "notice" and e.json()["kind"] == "error"]
    assert FILLED in gateway.log()
