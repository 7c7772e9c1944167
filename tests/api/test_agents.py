"""Agent and provider routes, health probes, and the OpenAPI docs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import (
    AUTH,
    Gateway,
    empty_database,
    gateway_env,
    start_gateway,
    stop_gateway,
)
from tests.api.test_prompt import INSTANT, new_session, stream_prompt
from tests.api.test_sessions import assert_problem
from tests.fakes.harness import FakePaseoDaemon


async def _agent_of_new_session(client: httpx.AsyncClient) -> tuple[str, str]:
    session = await new_session(client)
    _, events = await stream_prompt(client, session["id"], INSTANT)
    return session["id"], events[1].json()["agent_id"]


async def test_list_get_stop_archive(client: httpx.AsyncClient) -> None:
    session_id, agent_id = await _agent_of_new_session(client)
    listed = await client.get("/agents", params={"label": f"gateway.session={session_id}"})
    assert listed.status_code == 200
    assert [a["id"] for a in listed.json()] == [agent_id]
    summary = listed.json()[0]
    assert set(summary) == {
        "id", "title", "provider", "model", "thinking", "status", "cwd", "created_at", "daemon"
    }  # fmt: skip
    assert summary["daemon"] == "default"  # the one daemon a single-daemon gateway has
    assert (summary["provider"], summary["model"]) == ("mock", "ten-second-stream")
    assert summary["cwd"].startswith("/")

    agent = (await client.get(f"/agents/{agent_id}")).json()
    assert agent["id"] == agent_id and agent["provider"] == "mock"
    assert agent["model"] == "ten-second-stream" and agent["status"] == "idle"
    assert agent["last_usage"]["output_tokens"] > 0

    stopped = (await client.post(f"/agents/{agent_id}/stop")).json()
    assert stopped == {"stopped_count": 0, "agent_ids": []}  # idle: nothing to interrupt

    archived = await client.post(f"/agents/{agent_id}/archive")
    assert archived.status_code == 200, archived.text
    assert archived.json()["agent_id"] == agent_id
    assert datetime.fromisoformat(archived.json()["archived_at"]).tzinfo is not None
    again = await client.post(f"/agents/{agent_id}/archive")
    assert_problem(again, 409, "conflict")
    active_only = await client.get("/agents", params={"label": f"gateway.session={session_id}"})
    assert active_only.json() == []
    with_archived = await client.get(
        "/agents", params={"label": f"gateway.session={session_id}", "all": "true"}
    )
    assert [a["id"] for a in with_archived.json()] == [agent_id]


async def test_agent_errors(client: httpx.AsyncClient) -> None:
    missing = str(uuid.uuid4())
    assert_problem(await client.get(f"/agents/{missing}"), 404, "agent_not_found")
    assert_problem(await client.post(f"/agents/{missing}/stop"), 404, "agent_not_found")
    assert_problem(await client.post(f"/agents/{missing}/archive"), 404, "agent_not_found")
    assert_problem(await client.get("/agents/--all"), 422, "validation_failed")
    assert_problem(await client.get("/agents/abc123"), 422, "validation_failed")
    assert_problem(await client.get("/agents", params={"label": "novalue"}), 422, "invalid_input")


async def test_providers(client: httpx.AsyncClient) -> None:
    response = await client.get("/providers")
    assert response.status_code == 200
    providers = {p["provider"]: p for p in response.json()}
    assert providers["mock"]["default_mode"] == "load-test"
    assert providers["mock"]["enabled"] is True and isinstance(providers["mock"]["modes"], list)
    for mode in providers["mock"]["modes"]:  # none while the provider is loading
        assert mode == {"id": "load-test", "label": "Load Test"}


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert all(check["ok"] for check in checks.values())
    transport = ready.json()["transport"]
    if transport == "cli":
        assert set(checks) == {"database", "paseo_binary", "daemon"}
    else:
        # No CLI needed; the daemon said who it is at the handshake.
        assert transport == "daemon" and set(checks) == {"database", "daemon"}
        assert checks["daemon"]["version"] and checks["daemon"]["server_id"]
        assert checks["daemon"]["server_id"] in checks["daemon"]["detail"]


async def test_docs_show_every_route_with_its_problems(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in (
        "/sessions",
        "/sessions/import",
        "/sessions/{session_id}",
        "/sessions/{session_id}/prompt",
        "/sessions/{session_id}/cancel",
        "/sessions/{session_id}/turns",
        "/sessions/{session_id}/turns/{turn_id}",
        "/agents",
        "/agents/{agent_id}",
        "/agents/{agent_id}/stop",
        "/agents/{agent_id}/archive",
        "/providers",
        "/healthz",
        "/readyz",
    ):
        assert path in paths, path
    prompt = paths["/sessions/{session_id}/prompt"]["post"]
    assert "text/event-stream" in prompt["responses"]["200"]["content"]
    assert {"404", "409", "413", "422", "503"} <= set(prompt["responses"])
    assert "application/problem+json" in prompt["responses"]["409"]["content"]
    assert "Problem" in spec["components"]["schemas"]
    create = paths["/sessions"]["post"]["requestBody"]["content"]["application/json"]
    assert spec["components"]["schemas"]["SessionCreate"]["examples"] or create


# --- A gateway whose Paseo is missing ------------------------------------------------------


@pytest.fixture(scope="module", params=["daemon_down", "binary_missing"])
def broken_gateway(
    request: pytest.FixtureRequest,
    fake_daemon: FakePaseoDaemon,
    agent_cwd: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, Gateway]]:
    log_dir = tmp_path_factory.mktemp("broken")
    overrides = (
        {"PASEO_GATEWAY_PASEO_HOST": "127.0.0.1:1"}
        if request.param == "daemon_down"
        else {"PASEO_GATEWAY_PASEO_BIN": str(log_dir / "no-such-paseo")}
    )
    with empty_database("sqlite", log_dir) as url:
        gateway = start_gateway(log_dir, gateway_env(url, fake_daemon, agent_cwd, **overrides))
        try:
            yield request.param, gateway
        finally:
            stop_gateway(gateway)


async def test_missing_paseo_is_503_with_the_reason(broken_gateway: tuple[str, Gateway]) -> None:
    kind, gateway = broken_gateway
    code = "daemon_not_running" if kind == "daemon_down" else "paseo_not_installed"
    async with httpx.AsyncClient(headers=AUTH, base_url=gateway.url, timeout=60) as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        if ready.json()["transport"] == "daemon" and kind == "binary_missing":
            assert ready.status_code == 200  # the WebSocket needs no CLI
            return
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["database"]["ok"] and not checks["daemon"]["ok"]
        if ready.json()["transport"] == "cli":
            assert checks["paseo_binary"]["ok"] == (kind == "daemon_down")
        for response in (await client.get("/agents"), await client.get("/providers")):
            problem = assert_problem(response, 503, code)
            assert "PASEO_GATEWAY_" in problem["detail"] or "daemon" in problem["detail"]
        # A new session's provider is checked against the daemon: refused, nothing stored.
        assert_problem(await client.post("/sessions", json={"prompt": INSTANT}), 503, code)
        assert (await client.get("/sessions")).json()["total"] == 0
