"""Input the gateway checks before it stores a session: the model and mode against what the
provider lists, the folder against the file system, on both transports."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import (
    AUTH,
    TRANSPORTS,
    empty_database,
    gateway_env,
    start_gateway,
    stop_gateway,
)
from tests.api.test_sessions import assert_problem
from tests.fakes.harness import FakePaseoDaemon

MOCK_MODELS = [
    "five-minute-stream",
    "thirty-minute-stream",
    "one-minute-stream",
    "ten-second-stream",
]
# The fake daemon's providers load for 3 s times its scale after it starts.
READY_SECONDS = 60.0


async def _total(client: httpx.AsyncClient) -> int:
    total: int = (await client.get("/sessions", params={"limit": 1})).json()["total"]
    return total


async def _mock_ready(client: httpx.AsyncClient) -> dict[str, Any]:
    """`mock` as `GET /providers` shows it, once it has loaded."""
    deadline = asyncio.get_running_loop().time() + READY_SECONDS
    while True:
        providers = (await client.get("/providers")).json()
        mock: dict[str, Any] = next(p for p in providers if p["provider"] == "mock")
        if mock["status"] == "ready" or asyncio.get_running_loop().time() > deadline:
            return mock
        await asyncio.sleep(0.1)


async def test_a_model_must_be_one_the_provider_lists(client: httpx.AsyncClient) -> None:
    before = await _total(client)
    for body in ({"model": "gpt-5"}, {"provider": "mock", "model": "gpt-5"}):
        problem = assert_problem(await client.post("/sessions", json=body), 422, "unknown_model")
        assert problem["field"] == "model" and problem["models"] == MOCK_MODELS
        assert "'gpt-5'" in problem["detail"] and "ten-second-stream" in problem["detail"]
    claude = await client.post("/sessions", json={"provider": "claude", "model": "gpt-5"})
    assert "claude-opus-4-6" in assert_problem(claude, 422, "unknown_model")["models"]
    assert await _total(client) == before  # nothing stored
    listed = await client.post("/sessions", json={"provider": "mock", "model": "one-minute-stream"})
    assert listed.status_code == 201, listed.text
    assert listed.json()["model"] == "one-minute-stream"


async def test_the_openai_route_refuses_the_same_models_its_own_way(
    client: httpx.AsyncClient,
) -> None:
    body = {"model": "mock/gpt-5", "messages": [{"role": "user", "content": "hi"}]}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("model_not_found", "model")
    assert "mock/ten-second-stream" in error["message"]  # as GET /v1/models names it


async def test_a_cwd_must_be_an_existing_directory(
    client: httpx.AsyncClient, agent_cwd: Path
) -> None:
    before = await _total(client)
    missing = agent_cwd / f"missing-{uuid.uuid4().hex[:8]}"
    problem = assert_problem(
        await client.post("/sessions", json={"cwd": str(missing)}), 422, "cwd_not_found"
    )
    assert problem["field"] == "cwd" and str(missing) in problem["detail"]
    file = agent_cwd / f"file-{uuid.uuid4().hex[:8]}.txt"
    file.write_text("not a folder")
    problem = assert_problem(
        await client.post("/sessions", json={"cwd": str(file)}), 422, "cwd_not_a_directory"
    )
    assert problem["field"] == "cwd"
    # Outside the roots stays what it was, whether or not the folder exists.
    outside = assert_problem(
        await client.post("/sessions", json={"cwd": "/no/such/folder"}), 422, "invalid_input"
    )
    assert "outside the workspace roots" in outside["detail"]
    assert await _total(client) == before
    missing.mkdir()
    created = await client.post("/sessions", json={"cwd": str(missing)})
    assert created.status_code == 201, created.text


async def test_providers_list_modes_as_ids_and_labels(client: httpx.AsyncClient) -> None:
    mock = await _mock_ready(client)
    assert mock["status"] == "ready", mock
    assert mock["modes"] == [{"id": "load-test", "label": "Load Test"}]
    assert mock["default_mode"] == "load-test"
    providers = (await client.get("/providers")).json()
    claude = next(p for p in providers if p["provider"] == "claude")
    assert {"id": "plan", "label": "Plan Mode"} in claude["modes"]
    assert {"id": "acceptEdits", "label": "Accept File Edits"} in claude["modes"]


async def test_a_mode_before_the_agent_is_checked_against_the_providers(
    client: httpx.AsyncClient,
) -> None:
    await _mock_ready(client)
    pending = (await client.post("/sessions", json={})).json()
    url = f"/sessions/{pending['id']}"
    problem = assert_problem(await client.patch(url, json={"mode": "yolo"}), 422, "unknown_mode")
    assert problem["field"] == "mode" and problem["modes"] == ["load-test"]
    assert "'yolo'" in problem["detail"]
    label = assert_problem(await client.patch(url, json={"mode": "Load Test"}), 422, "unknown_mode")
    assert "'Load Test' is the label of 'load-test'" in label["detail"]
    assert (await client.get(url)).json()["mode"] is None  # nothing stored
    changed = await client.patch(url, json={"mode": "load-test", "title": "kept"})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["mode"], changed.json()["title"]) == ("load-test", "kept")


async def test_a_creates_mode_is_checked_too(client: httpx.AsyncClient) -> None:
    await _mock_ready(client)
    before = await _total(client)
    problem = assert_problem(
        await client.post("/sessions", json={"provider": "mock", "mode": "plan"}),
        422,
        "unknown_mode",
    )
    assert problem["modes"] == ["load-test"]
    assert await _total(client) == before
    created = await client.post("/sessions", json={"provider": "mock", "mode": "load-test"})
    assert created.status_code == 201 and created.json()["mode"] == "load-test"


# --- a daemon whose providers are still loading ------------------------------------------------


@pytest.fixture(scope="module")
def loading_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakePaseoDaemon]:
    """A daemon slowed 100 times: its providers stay `loading` for 300 s."""
    with FakePaseoDaemon(tmp_path_factory.mktemp("loading-home"), time_scale=100.0) as daemon:
        yield daemon


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_modes_of_a_provider_still_loading_are_a_503_to_retry(
    loading_daemon: FakePaseoDaemon, agent_cwd: Path, tmp_path: Path, transport: str
) -> None:
    with empty_database("sqlite", tmp_path) as url:
        env = gateway_env(url, loading_daemon, agent_cwd, PASEO_GATEWAY_TRANSPORT=transport)
        gateway = start_gateway(tmp_path, env)
    try:
        async with httpx.AsyncClient(base_url=gateway.url, headers=AUTH, timeout=60) as client:
            providers = (await client.get("/providers")).json()
            mock = next(p for p in providers if p["provider"] == "mock")
            assert (mock["status"], mock["modes"]) == ("loading", [])
            before = await _total(client)
            refused = await client.post("/sessions", json={"mode": "load-test"})
            problem = assert_problem(refused, 503, "provider_not_ready")
            assert int(refused.headers["retry-after"]) > 0 and "mock" in problem["detail"]
            assert await _total(client) == before
            pending = await client.post("/sessions", json={})  # no mode: nothing to wait for
            assert pending.status_code == 201, pending.text
            patched = await client.patch(
                f"/sessions/{pending.json()['id']}", json={"mode": "load-test"}
            )
            assert_problem(patched, 503, "provider_not_ready")
            assert "retry-after" in patched.headers
    finally:
        stop_gateway(gateway)
