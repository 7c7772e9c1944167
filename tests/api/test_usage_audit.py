"""Usage, budgets and the audit trail end to end: two gateway replicas on one database
(SQLite and PostgreSQL), the fake daemon, keys made through the API."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import (
    AUTH,
    Gateway,
    replica_pair,
)
from tests.api.test_prompt import new_session, stream_prompt
from tests.api.test_sessions import assert_problem
from tests.conftest import BACKENDS
from tests.fakes.harness import FakePaseoDaemon
from tests.sse import collect_turn


@pytest.fixture(scope="module", params=BACKENDS)
def replicas(
    request: pytest.FixtureRequest,
    fake_daemon: FakePaseoDaemon,
    agent_cwd: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Gateway, Gateway]]:
    """Two gateways on one database: a budget must hold whichever one a prompt reaches."""
    folder = tmp_path_factory.mktemp(f"usage-{request.param}")
    with replica_pair(request.param, folder, fake_daemon, agent_cwd) as pair:
        yield pair


@pytest.fixture
async def admin(replicas: tuple[Gateway, Gateway]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=replicas[0].url, timeout=60, headers=AUTH) as client:
        yield client


async def _key(admin: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    body = {"name": f"key-{uuid.uuid4().hex[:8]}", "scopes": ["prompt"], **body}
    response = await admin.post("/keys", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _clients(
    replicas: tuple[Gateway, Gateway], key: dict[str, Any]
) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {key['secret']}"}
    return (
        httpx.AsyncClient(base_url=replicas[0].url, timeout=60, headers=headers),
        httpx.AsyncClient(base_url=replicas[1].url, timeout=60, headers=headers),
    )


async def _turn(client: httpx.AsyncClient, session_id: str, turn_id: str) -> dict[str, Any]:
    response = await client.get(f"/sessions/{session_id}/turns/{turn_id}")
    assert response.status_code == 200, response.text
    turn: dict[str, Any] = response.json()
    return turn


# --- budgets ------------------------------------------------------------------------------------


async def test_a_key_past_its_output_tokens_gets_429_budget_exceeded(
    replicas: tuple[Gateway, Gateway], admin: httpx.AsyncClient
) -> None:
    key = await _key(admin, limits={"output_tokens_per_day": 1})
    assert key["limits"] == {
        "output_tokens_per_day": 1,
        "cost_usd_per_day": None,
        "cost_usd_per_month": None,
        "turns_per_day": None,
    }
    a, b = _clients(replicas, key)
    async with a, b:
        session = await new_session(a)
        response, events = await stream_prompt(a, session["id"], "write a haiku")
        assert events[-1].event == "turn.completed", [e.event for e in events]
        used = events[-1].json()["usage"]["output_tokens"]
        assert used >= 1

        response = await b.post(f"/sessions/{session['id']}/prompt", json={"prompt": "again"})
        problem = assert_problem(response, 429, "budget_exceeded")
        assert (problem["limit"], problem["amount"], problem["used"]) == (
            "output_tokens_per_day",
            1,
            used,
        )
        assert 0 < int(response.headers["retry-after"]) <= 86_400
        turns = (await a.get(f"/sessions/{session['id']}/turns")).json()["items"]
        assert len(turns) == 1  # the refusal stored nothing

        # A session made with its first prompt, or by a chat completion, is refused before
        # it is stored.
        before = (await a.get("/sessions")).json()["total"]
        response = await a.post("/sessions", json={"prompt": "a new one"})
        assert_problem(response, 429, "budget_exceeded")
        chat = {"model": "mock/ten-second-stream", "messages": [{"role": "user", "content": "hi"}]}
        response = await b.post("/v1/chat/completions", json=chat)
        assert response.status_code == 429, response.text
        assert response.json()["error"]["code"] == "budget_exceeded"
        assert "retry-after" in response.headers
        assert (await a.get("/sessions")).json()["total"] == before

        # Raising the budget lets the key go on at once.
        patched = await admin.patch(
            f"/keys/{key['id']}", json={"limits": {"output_tokens_per_day": used + 10_000}}
        )
        assert patched.status_code == 200, patched.text
        response, events = await stream_prompt(b, session["id"], "once more")
        assert events[-1].event == "turn.completed"


async def test_two_replicas_racing_never_admit_past_turns_per_day(
    replicas: tuple[Gateway, Gateway], admin: httpx.AsyncClient
) -> None:
    limit, tries = 3, 8
    key = await _key(admin, limits={"turns_per_day": limit})
    a, b = _clients(replicas, key)
    async with a, b:
        sessions = [await new_session(a) for _ in range(tries)]

        async def prompt(client: httpx.AsyncClient, session_id: str) -> int:
            async with client.stream(
                "POST", f"/sessions/{session_id}/prompt", json={"prompt": "write a haiku"}
            ) as response:
                if response.status_code == 200:
                    await collect_turn(response)
                else:
                    await response.aread()
                    assert response.json()["code"] == "budget_exceeded", response.text
                return response.status_code

        statuses = await asyncio.gather(
            *(prompt((a, b)[i % 2], s["id"]) for i, s in enumerate(sessions))
        )
    assert sorted(statuses) == [200] * limit + [429] * (tries - limit)
    usage = (await admin.get("/usage", params={"group_by": "key"})).json()["rows"]
    [row] = [row for row in usage if row["group"] == key["id"]]
    assert row["turns"] == limit


async def test_limits_are_checked(admin: httpx.AsyncClient) -> None:
    response = await admin.post(
        "/keys", json={"name": "x", "scopes": ["prompt"], "limits": {"turns_per_week": 1}}
    )
    assert_problem(response, 422, "validation_failed")
    response = await admin.post(
        "/keys", json={"name": "x", "scopes": ["prompt"], "limits": {"turns_per_day": -1}}
    )
    assert_problem(response, 422, "validation_failed")
    response = await admin.patch(f"/keys/{uuid.uuid4()}", json={"limits": None})
    assert_problem(response, 404, "not_found")


# --- usage --------------------------------------------------------------------------------------


async def test_usage_sums_match_the_stored_turns(
    replicas: tuple[Gateway, Gateway], admin: httpx.AsyncClient
) -> None:
    key = await _key(admin)
    other = await _key(admin)
    a, b = _clients(replicas, key)
    c, _ = _clients(replicas, other)
    async with a, b, c, _:
        turns = []
        for client in (a, b):
            session = await new_session(client, title="usage")
            for prompt in ("write a haiku", "and another"):
                response, events = await stream_prompt(client, session["id"], prompt)
                assert events[-1].event == "turn.completed"
                turns.append(await _turn(client, session["id"], response.headers["x-turn-id"]))
        theirs = await new_session(c)
        await stream_prompt(c, theirs["id"], "write a haiku")

        expected = {
            "turns": len(turns),
            **{
                field: sum(turn["usage"][field] or 0 for turn in turns)
                for field in ("input_tokens", "output_tokens", "cached_tokens")
            },
        }
        assert expected["output_tokens"] > 0
        for group_by in ("key", "day", "model"):
            response = await a.get("/usage", params={"group_by": group_by})
            assert response.status_code == 200, response.text
            rows = response.json()["rows"]
            assert len(rows) == 1, rows  # a key sees its own turns only
            assert {field: rows[0][field] for field in expected} == expected
        [key_row] = (await a.get("/usage", params={"group_by": "key"})).json()["rows"]
        assert (key_row["group"], key_row["name"]) == (key["id"], key["name"])
        by_session = (await b.get("/usage", params={"group_by": "session"})).json()["rows"]
        assert sorted(row["turns"] for row in by_session) == [2, 2]
        assert {row["name"] for row in by_session} == {"usage"}

        # An admin sees every key's; a window that ends before the turns holds none.
        everyone = (await admin.get("/usage", params={"group_by": "key"})).json()["rows"]
        assert {key["id"], other["id"]} <= {row["group"] for row in everyone}
        first = turns[0]["started_at"]
        before = (await a.get("/usage", params={"to": first})).json()
        assert before["rows"] == []

        response = await a.get("/usage", params={"group_by": "week"})
        assert_problem(response, 422, "validation_failed")
        response = await a.get("/usage", params={"from": first, "to": first})
        assert_problem(response, 422, "invalid_input")


# --- audit --------------------------------------------------------------------------------------


async def test_audit_records_each_change_once_without_secrets(
    replicas: tuple[Gateway, Gateway], admin: httpx.AsyncClient
) -> None:
    key = await _key(admin, limits={"turns_per_day": 1})
    a, b = _clients(replicas, key)
    prompt_text = f"a secret prompt {uuid.uuid4().hex}"
    async with a, b:
        created = await a.post("/sessions", json={}, headers={"X-Request-ID": "audit-create-1"})
        session_id = created.json()["id"]
        response, _ = await stream_prompt(b, session_id, prompt_text)
        turn_id = response.headers["x-turn-id"]
        refused = await a.post(f"/sessions/{session_id}/prompt", json={"prompt": prompt_text})
        assert_problem(refused, 429, "budget_exceeded")
        patched = await a.patch(f"/sessions/{session_id}", json={"title": "renamed"})
        assert patched.status_code == 200, patched.text
        closed = await b.delete(f"/sessions/{session_id}")
        assert closed.status_code == 200, closed.text
        denied = await a.get("/audit")
        assert_problem(denied, 403, "insufficient_scope")
    revoked = await admin.delete(f"/keys/{key['id']}")
    assert revoked.status_code == 200

    response = await admin.get("/audit", params={"session_id": session_id, "limit": 200})
    assert response.status_code == 200, response.text
    records = response.json()["items"]
    actions = sorted((record["action"], record["outcome"]) for record in records)
    assert actions == [
        ("session.close", "ok"),
        ("session.create", "ok"),
        ("session.update", "ok"),
        ("turn.prompt", "budget_exceeded"),
        ("turn.prompt", "ok"),
    ]
    by_action = {(r["action"], r["outcome"]): r for r in records}
    assert by_action[("session.create", "ok")]["request_id"] == "audit-create-1"
    assert by_action[("turn.prompt", "ok")]["turn_id"] == turn_id
    assert all(r["key_id"] == key["id"] and r["key_name"] == key["name"] for r in records)
    assert all(r["client"] == "127.0.0.1" for r in records)

    key_records = (await admin.get("/audit", params={"key_id": key["id"]})).json()["items"]
    assert {r["action"] for r in key_records} >= {"session.create", "turn.prompt"}
    made = await admin.get("/audit", params={"action": "key.create", "limit": 200})
    assert [r for r in made.json()["items"] if r["target_id"] == key["id"]]
    revokes = await admin.get("/audit", params={"action": "key.revoke"})
    [revoke] = [r for r in revokes.json()["items"] if r["target_id"] == key["id"]]
    assert revoke["key_name"] == "bootstrap admin" or revoke["key_id"] != key["id"]

    everything = json.dumps((await admin.get("/audit", params={"limit": 200})).json())
    assert prompt_text not in everything
    assert key["secret"] not in everything and key["secret"][:20] not in everything
