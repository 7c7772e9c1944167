"""`mode=steer`: a prompt handed to the running turn, which goes on with it, where the Paseo
behind the gateway can steer (the daemon transport on Paseo 0.5+); a clear 409 elsewhere."""

from __future__ import annotations

import asyncio

import httpx

from tests.api.test_prompt import new_session
from tests.api.test_sessions import assert_problem
from tests.fakes.fake_paseo_versions import release as fake_release
from tests.fakes.harness import Hold
from tests.sse import read_events, read_until


async def _can_steer(client: httpx.AsyncClient) -> bool:
    """What this gateway's transport and the fake's release allow (the release's own data)."""
    ready = (await client.get("/readyz")).json()
    return bool(ready["transport"] == "daemon" and fake_release().steering)


async def test_a_steer_joins_the_running_turn_or_is_refused_untouched(
    client: httpx.AsyncClient, hold: Hold
) -> None:
    """The turn runs (`hold`) until the steer joined it or was refused, then ends."""
    session = await new_session(client)
    url = f"/sessions/{session['id']}/prompt"
    prompt = hold.prompt("write a haiku")
    async with client.stream("POST", url, json={"prompt": prompt}) as running:
        turn_id = running.headers["x-turn-id"]
        stream = read_events(running)
        await read_until(stream, "text")  # the turn runs
        # A steer's answer is the turn's stream: it ends with the turn, after the release.
        steering = asyncio.create_task(
            client.post(url, json={"prompt": "and mention the sea", "mode": "steer"})
        )
        steered = asyncio.create_task(read_until(stream, "turn.steered"))
        await asyncio.wait({steering, steered}, return_when=asyncio.FIRST_COMPLETED)
        hold.release()
        rest = await steered  # refused: the whole rest, without a turn.steered
        rest += [event async for event in stream]
        steer = await steering
    names = [event.event for event in rest]
    assert names[-1] == "turn.completed"
    if await _can_steer(client):
        assert steer.status_code == 200, steer.text
        assert steer.headers["x-turn-id"] == turn_id  # that turn, not a new one
        steered = [event.json() for event in rest if event.event == "turn.steered"]
        assert steered == [{"prompt": "and mention the sea"}]
        # The steering request's answer is that turn's stream, the steer in it.
        assert "event: turn.steered" in steer.text and "event: turn.completed" in steer.text
    else:
        assert_problem(steer, 409, "steer_unsupported")
        assert "turn.steered" not in names
    turns = (await client.get(f"/sessions/{session['id']}/turns")).json()["items"]
    assert [turn["prompt"] for turn in turns] == [prompt]  # no second turn


async def test_a_steer_needs_a_running_turn_and_no_idempotency_key(
    client: httpx.AsyncClient,
) -> None:
    session = await new_session(client)
    url = f"/sessions/{session['id']}/prompt"
    idle = await client.post(url, json={"prompt": "hello", "mode": "steer"})
    assert_problem(idle, 409, "no_running_turn")
    keyed = await client.post(
        url, json={"prompt": "hello", "mode": "steer"}, headers={"Idempotency-Key": "k1"}
    )
    assert_problem(keyed, 422, "invalid_input")
    assert "Idempotency-Key" in keyed.json()["detail"]
    assert (await client.get(f"/sessions/{session['id']}/turns")).json()["items"] == []
