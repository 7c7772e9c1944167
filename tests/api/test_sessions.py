"""Session routes: create, import, list, read, close, and their errors."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.sse import collect_turn

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["code"] == code
    assert body["title"] and body["detail"] and body["type"].endswith(code)
    return body


async def test_create_read_and_list(client: httpx.AsyncClient) -> None:
    tag = uuid.uuid4().hex
    response = await client.post(
        "/sessions", json={"title": "first", "labels": {"team": "qa", "run": tag}}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "pending" and created["agent_id"] is None
    assert created["provider"] == "mock" and created["model"] == "ten-second-stream"
    assert created["labels"] == {"team": "qa", "run": tag}
    assert created["turn"] is None

    detail = (await client.get(f"/sessions/{created['id']}")).json()
    assert detail["id"] == created["id"] and detail["agent"] is None
    assert detail["active_turn"] is None

    listed = (await client.get("/sessions", params={"label": f"run={tag}"})).json()
    assert listed["total"] == 1 and [item["id"] for item in listed["items"]] == [created["id"]]


async def test_list_paginates_and_filters(client: httpx.AsyncClient) -> None:
    tag = uuid.uuid4().hex
    ids = [
        (await client.post("/sessions", json={"labels": {"page": tag}})).json()["id"]
        for _ in range(3)
    ]
    first = (await client.get("/sessions", params={"label": f"page={tag}", "limit": 2})).json()
    second = (
        await client.get("/sessions", params={"label": f"page={tag}", "limit": 2, "offset": 2})
    ).json()
    assert first["total"] == second["total"] == 3
    assert [i["id"] for i in first["items"] + second["items"]] == list(reversed(ids))
    closed = (
        await client.get("/sessions", params={"label": f"page={tag}", "status": "closed"})
    ).json()
    assert closed["total"] == 0


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"cwd": "relative/path"}, "cwd"),
        ({"labels": {"gateway.session": "x"}}, "labels"),
        ({"labels": {"-bad": "x"}}, "labels"),
        ({"labels": {"k": "a\nb"}}, "labels"),
        ({"provider": "--host=evil"}, "provider"),
        ({"model": "-m"}, "model"),
        ({"title": ""}, "title"),
        ({"unknown": 1}, "unknown"),
        ({"prompt": "a\u0000b"}, "prompt"),
    ],
)
async def test_create_rejects_bad_input(
    client: httpx.AsyncClient, body: dict[str, Any], where: str
) -> None:
    problem = assert_problem(await client.post("/sessions", json=body), 422, "validation_failed")
    assert where in problem["detail"]


async def test_a_body_that_is_not_json_says_what_to_send(client: httpx.AsyncClient) -> None:
    form = await client.post("/sessions", data={"title": "t"})
    detail = assert_problem(form, 422, "validation_failed")["detail"]
    assert "Content-Type: application/json" in detail and "x-www-form-urlencoded" in detail
    raw = await client.post("/sessions", content=b'{"title": "t"}')
    assert "content type: none" in assert_problem(raw, 422, "validation_failed")["detail"]
    array = await client.post("/sessions", json=["title"])
    assert "JSON object" in assert_problem(array, 422, "validation_failed")["detail"]


async def test_create_rejects_blank_first_prompt(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post("/sessions", json={"prompt": "  \n"}), 422, "invalid_input")


async def test_create_with_prompt_starts_the_first_turn(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/sessions", json={"prompt": "emit 3 coalesced agent stream updates"}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "active" and created["agent_id"]
    turn = created["turn"]
    assert turn["number"] == 1 and turn["status"] in ("running", "completed")


async def test_unknown_and_malformed_ids(client: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    assert_problem(await client.get(f"/sessions/{missing}"), 404, "session_not_found")
    assert_problem(await client.delete(f"/sessions/{missing}"), 404, "session_not_found")
    assert_problem(await client.get(f"/sessions/{missing}/turns"), 404, "session_not_found")
    assert_problem(await client.get("/sessions/not-a-uuid"), 422, "validation_failed")
    assert_problem(await client.get("/no/such/route"), 404, "route_not_found")


async def test_patch_steers_a_session_and_its_agent(client: httpx.AsyncClient) -> None:
    tag = uuid.uuid4().hex
    session = await _ran_session(client, labels={"team": "qa"})
    changed = await client.patch(
        f"/sessions/{session['id']}",
        json={"title": "renamed", "labels": {"steer": tag}, "mode": "load-test"},
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["title"], body["mode"]) == ("renamed", "load-test")
    assert body["labels"] == {"team": "qa", "steer": tag}  # merged
    listed = (await client.get("/agents", params={"label": f"steer={tag}"})).json()
    assert [(agent["id"], agent["title"]) for agent in listed] == [(session["agent_id"], "renamed")]
    agent = (await client.get(f"/agents/{session['agent_id']}")).json()
    assert agent["mode"] == "load-test"
    # A session without an agent yet keeps the change for the agent it creates.
    pending = (await client.post("/sessions", json={})).json()
    later = await client.patch(f"/sessions/{pending['id']}", json={"mode": "load-test"})
    assert later.status_code == 200 and later.json()["mode"] == "load-test"


async def test_patch_errors_say_what_to_fix(client: httpx.AsyncClient) -> None:
    session = await _ran_session(client)
    url = f"/sessions/{session['id']}"
    assert_problem(await client.patch(url, json={}), 422, "validation_failed")
    assert_problem(
        await client.patch(url, json={"labels": {"gateway.session": "x"}}), 422, "validation_failed"
    )
    wrong_mode = assert_problem(await client.patch(url, json={"mode": "plan"}), 422, "unknown_mode")
    assert "load-test" in wrong_mode["detail"]  # the modes this agent has
    assert wrong_mode["modes"] == ["load-test"] and wrong_mode["field"] == "mode"
    assert (await client.get(url)).json()["mode"] != "plan"  # nothing changed
    assert_problem(
        await client.patch(f"/sessions/{uuid.uuid4()}", json={"title": "x"}),
        404,
        "session_not_found",
    )
    assert (await client.delete(url)).status_code == 200
    assert_problem(await client.patch(url, json={"title": "x"}), 409, "session_closed")


async def test_close_pending_session(client: httpx.AsyncClient) -> None:
    created = (await client.post("/sessions", json={})).json()
    closed = await client.delete(f"/sessions/{created['id']}")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    again = await client.delete(f"/sessions/{created['id']}")
    assert again.status_code == 200 and again.json()["status"] == "closed"


async def _ran_session(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    """A session whose first turn (and so its agent) has completed."""
    ran = await client.post(
        "/sessions", json={"prompt": "emit 1 coalesced agent stream updates", **fields}
    )
    assert ran.status_code == 201, ran.text
    session_id, turn_id = ran.json()["id"], ran.json()["turn"]["id"]
    async with client.stream("GET", f"/sessions/{session_id}/turns/{turn_id}/events") as events:
        assert (await collect_turn(events))[-1].event == "turn.completed"
    return dict(ran.json())


async def test_import_existing_provider_session(client: httpx.AsyncClient) -> None:
    # Paseo lists only agents in a folder it has a workspace for; a session that ran there
    # made one (the CLI cannot make one for an import; the daemon transport opens it).
    await _ran_session(client)
    response = await client.post(
        "/sessions/import",
        json={"provider": "claude", "provider_session_id": str(uuid.uuid4()), "title": "old"},
    )
    assert response.status_code == 201, response.text
    imported = response.json()
    assert imported["status"] == "active" and imported["provider"] == "claude"
    agent = (await client.get(f"/agents/{imported['agent_id']}")).json()
    assert agent["provider"] == "claude"
    listed = (
        await client.get("/agents", params={"label": f"gateway.session={imported['id']}"})
    ).json()
    assert [a["id"] for a in listed] == [imported["agent_id"]]


async def test_import_errors(client: httpx.AsyncClient) -> None:
    mock = await client.post(
        "/sessions/import", json={"provider": "mock", "provider_session_id": "abc"}
    )
    assert_problem(mock, 422, "validation_failed")
    codex = await client.post(
        "/sessions/import", json={"provider": "codex", "provider_session_id": "abc"}
    )
    problem = assert_problem(codex, 422, "invalid_input")
    assert problem["paseo_code"] == "AGENT_IMPORT_FAILED"


async def test_a_body_that_is_not_json_is_a_400_saying_so(client: httpx.AsyncClient) -> None:
    session = (await client.post("/sessions", json={})).json()
    json_type = {"content-type": "application/json"}
    for method, path in (
        ("POST", "/sessions"),
        ("POST", f"/sessions/{session['id']}/prompt"),
        ("PATCH", f"/sessions/{session['id']}"),
        ("POST", f"/sessions/{session['id']}/permissions/mock-plan-1"),
    ):
        answer = await client.request(method, path, content=b'{"prompt": "hi",}', headers=json_type)
        problem = assert_problem(answer, 400, "malformed_body")
        assert "not valid JSON" in problem["detail"] and "character" in problem["detail"]
    paths = (await client.get("/openapi.json")).json()["paths"]
    for method, path in (
        ("post", "/sessions"),
        ("post", "/sessions/{session_id}/prompt"),
        ("post", "/sessions/import"),
        ("post", "/keys"),
        ("patch", "/sessions/{session_id}"),
        ("post", "/sessions/{session_id}/permissions/{permission_id}"),
    ):
        assert "400" in paths[path][method]["responses"], path  # /docs shows it
