"""A person in the loop: a permission request is an event, answered over HTTP, and the turn
goes on to its end (both transports, restarts and replicas)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import AUTH, empty_database
from tests.api.test_durable_turns import gateway_on
from tests.api.test_prompt import new_session
from tests.api.test_security import make_key
from tests.api.test_sessions import assert_problem
from tests.fakes.harness import FakePaseoDaemon
from tests.sse import SseEvent, read_events, read_until

PLAN = "emit synthetic plan approval"  # the mock asks to approve a plan, then completes


async def _asking(
    client: httpx.AsyncClient, session_id: str, **headers: str
) -> tuple[str, dict[str, Any], AsyncIterator[SseEvent], httpx.Response]:
    """Start the plan turn; its id, the request event's data, and the open stream."""
    request = client.build_request(
        "POST", f"/sessions/{session_id}/prompt", json={"prompt": PLAN}, headers=headers
    )
    response = await client.send(request, stream=True)
    assert response.status_code == 200, await response.aread()
    stream = read_events(response)
    seen = await read_until(stream, "turn.permission_requested")
    assert seen[-1].event == "turn.permission_requested", [e.event for e in seen]
    return response.headers["x-turn-id"], seen[-1].json(), stream, response


async def _rest(stream: AsyncIterator[SseEvent], response: httpx.Response) -> list[SseEvent]:
    try:
        return [event async for event in stream]
    finally:
        await response.aclose()


async def test_a_request_is_an_event_allowed_over_http_and_the_turn_completes(
    client: httpx.AsyncClient,
) -> None:
    session = await new_session(client)
    turn_id, asked, stream, response = await _asking(client, session["id"])
    assert asked["name"] == "MockPlanApproval"
    assert asked["description"].startswith("Review the proposed plan")
    # The turn is open, not ended: it waits (its status follows the stored event).
    await _status_becomes(client, session["id"], turn_id, "waiting_permission")
    pending = (await client.get(f"/sessions/{session['id']}/permissions")).json()
    assert [p["id"] for p in pending] == [asked["permission_id"]]

    answered = await client.post(
        f"/sessions/{session['id']}/permissions/{asked['permission_id']}",
        json={"behavior": "allow"},
    )
    assert answered.status_code == 200, answered.text
    assert answered.json() == {
        "permission_id": asked["permission_id"],
        "behavior": "allow",
        "turn_id": turn_id,
    }
    rest = await _rest(stream, response)
    resolved = next(e for e in rest if e.event == "turn.permission_resolved").json()
    assert (resolved["permission_id"], resolved["behavior"]) == (asked["permission_id"], "allow")
    assert resolved["by"] not in ("paseo", "timeout")  # the key that answered
    assert rest[-1].event == "turn.completed"
    assert (await client.get(f"/sessions/{session['id']}/permissions")).json() == []


async def test_a_deny_says_who_and_why_and_ends_as_paseo_reports_it(
    client: httpx.AsyncClient,
) -> None:
    owner = await make_key(client, "prompt")
    session = (await client.post("/sessions", json={}, headers=owner)).json()
    _, asked, stream, response = await _asking(client, session["id"], **owner)
    url = f"/sessions/{session['id']}/permissions/{asked['permission_id']}"
    body = {"behavior": "deny", "message": "not this plan"}
    reader = await make_key(client, "read")
    assert_problem(await client.post(url, json=body, headers=reader), 403, "insufficient_scope")
    stranger = await make_key(client, "prompt")
    assert_problem(await client.post(url, json=body, headers=stranger), 404, "session_not_found")
    assert (await client.post(url, json=body, headers=owner)).status_code == 200
    rest = await _rest(stream, response)
    resolved = next(e for e in rest if e.event == "turn.permission_resolved").json()
    assert resolved == {
        "permission_id": asked["permission_id"],
        "behavior": "deny",
        "by": "test",  # make_key's name
        "message": "not this plan",
    }
    assert rest[-1].event == "turn.completed"  # the mock completes a denied plan too


async def test_answer_errors(client: httpx.AsyncClient) -> None:
    session = await new_session(client)
    base = f"/sessions/{session['id']}/permissions"
    assert_problem(
        await client.post(f"{base}/x", json={"behavior": "allow"}), 409, "no_waiting_turn"
    )
    _, asked, stream, response = await _asking(client, session["id"])
    assert_problem(
        await client.post(f"{base}/nope", json={"behavior": "allow"}), 404, "permission_not_found"
    )
    assert_problem(
        await client.post(f"{base}/{asked['permission_id']}", json={"behavior": "maybe"}),
        422,
        "validation_failed",
    )
    # Two answers at once: one reaches Paseo, the other is refused.
    both = await asyncio.gather(
        *(
            client.post(f"{base}/{asked['permission_id']}", json={"behavior": behavior})
            for behavior in ("allow", "deny")
        )
    )
    assert sorted(r.status_code for r in both)[0] == 200
    assert sorted(r.status_code for r in both)[1] in (404, 409)
    rest = await _rest(stream, response)
    assert [e.event for e in rest].count("turn.permission_resolved") == 1
    assert rest[-1].event == "turn.completed"


async def test_an_unanswered_request_is_denied_at_the_permission_timeout(
    fake_daemon: FakePaseoDaemon, agent_cwd: Path, tmp_path: Path
) -> None:
    with (
        empty_database("sqlite", tmp_path) as url,
        gateway_on(
            url, fake_daemon, agent_cwd, tmp_path, PASEO_GATEWAY_PERMISSION_TIMEOUT_SECONDS="1"
        ) as gateway,
    ):
        async with httpx.AsyncClient(headers=AUTH, base_url=gateway.url, timeout=60) as client:
            session = await new_session(client)
            _, _, stream, response = await _asking(client, session["id"])
            rest = await _rest(stream, response)
    resolved = next(e for e in rest if e.event == "turn.permission_resolved").json()
    assert (resolved["behavior"], resolved["by"]) == ("deny", "timeout")
    assert "1 s" in resolved["message"]
    assert rest[-1].event == "turn.completed"


@pytest.mark.parametrize("killed", ["waiting", "just_shown"])
async def test_a_restarted_gateway_finds_the_request_and_another_replica_answers_it(
    fake_daemon: FakePaseoDaemon, agent_cwd: Path, tmp_path: Path, killed: str
) -> None:
    """Killed once the turn waits, or the moment a client was shown the request (before
    the turn is marked waiting): the request is stored, found again, and answered once."""
    fast = {"PASEO_GATEWAY_TURN_HEARTBEAT_SECONDS": "0.5", "PASEO_GATEWAY_TURN_STALE_SECONDS": "2"}
    with empty_database("postgresql", tmp_path) as url:
        with gateway_on(url, fake_daemon, agent_cwd, tmp_path / "a", **fast) as first:
            async with httpx.AsyncClient(headers=AUTH, base_url=first.url, timeout=60) as client:
                session = await new_session(client)
                response = await client.send(
                    client.build_request(
                        "POST", f"/sessions/{session['id']}/prompt", json={"prompt": PLAN}
                    ),
                    stream=True,
                )
                shown = await read_until(read_events(response), "turn.permission_requested")
                turn_id, asked = response.headers["x-turn-id"], shown[-1].json()
                if killed == "just_shown":
                    first.process.kill()  # SIGKILL the moment a client saw the request
                await response.aclose()
                if killed == "waiting":
                    await _status_becomes(client, session["id"], turn_id, "waiting_permission")
            first.process.kill()  # dies while the turn waits for a person
            first.process.wait()
        with (
            gateway_on(url, fake_daemon, agent_cwd, tmp_path / "b", **fast) as second,
            gateway_on(url, fake_daemon, agent_cwd, tmp_path / "c", **fast) as third,
        ):
            async with httpx.AsyncClient(headers=AUTH, timeout=60) as client:
                turn_url = f"/sessions/{session['id']}/turns/{turn_id}"
                pending = await client.get(f"{third.url}/sessions/{session['id']}/permissions")
                assert [p["id"] for p in pending.json()] == [asked["permission_id"]]
                # Answered before or after a living gateway takes the turn over, either way:
                answer = await client.post(
                    f"{third.url}/sessions/{session['id']}/permissions/{asked['permission_id']}",
                    json={"behavior": "allow"},
                )
                assert answer.status_code == 200, answer.text
                async with client.stream("GET", f"{second.url}{turn_url}/events") as events:
                    replay = [e async for e in read_events(events)]
    names = [e.event for e in replay]
    assert [(e.id, e.event, e.data) for e in replay[: len(shown)]] == [
        (e.id, e.event, e.data) for e in shown
    ]  # what the client was shown is what was stored
    assert names.count("turn.permission_requested") == 1  # found again, not asked twice
    assert names.count("turn.permission_resolved") == 1
    assert names[-1] == "turn.completed"


async def _status_becomes(
    client: httpx.AsyncClient, session_id: str, turn_id: str, status: str
) -> None:
    async with asyncio.timeout(60):
        url = f"/sessions/{session_id}/turns/{turn_id}"
        while (await client.get(url)).json()["status"] != status:
            await asyncio.sleep(0.05)


async def test_a_waiting_turn_can_be_cancelled(client: httpx.AsyncClient) -> None:
    session = await new_session(client)
    turn_id, _, stream, response = await _asking(client, session["id"])
    await _status_becomes(client, session["id"], turn_id, "waiting_permission")
    cancel = await client.post(f"/sessions/{session['id']}/cancel")
    assert cancel.status_code in (200, 202), cancel.text
    rest = await _rest(stream, response)
    assert rest[-1].event == "turn.cancelled"
    assert (await client.get(f"/sessions/{session['id']}/permissions")).json() == []
