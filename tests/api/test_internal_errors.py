"""A bug answers 500 as a problem with its request id, is logged once, and the client's
keep-alive connection survives it (a real uvicorn on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from app.main import create_app
from app.paseo.cli.client import CliPaseoClient
from app.settings import Settings
from tests.api.test_sessions import assert_problem


class BrokenPaseo(CliPaseoClient):
    """A transport with a bug in one call (what the gateway must survive)."""

    async def list_agents(self, **_: object) -> list[object]:  # type: ignore[override]
        raise RuntimeError("a bug in the transport")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
async def base_url(tmp_path: Path) -> AsyncIterator[str]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}",
        auth_disabled=True,
        paseo_bin=str(tmp_path / "no-paseo"),
    )
    app = create_app(settings, paseo=BrokenPaseo(str(tmp_path / "no-paseo")))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(60):
            while not server.started:
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_a_bug_is_a_500_problem_with_its_request_id_logged_once(
    base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            failed = await client.get("/agents", headers={"X-Request-ID": "bug-hunt-1"})
            again = await client.get("/healthz")  # the same keep-alive connection
    problem = assert_problem(failed, 500, "internal_error")
    assert "X-Request-ID" in problem["detail"]
    assert failed.headers["x-request-id"] == "bug-hunt-1"
    assert again.status_code == 200
    tracebacks = [r for r in caplog.records if r.exc_info and "a bug in" in str(r.exc_info[1])]
    assert len(tracebacks) == 1, [r.getMessage() for r in caplog.records]
    assert "Connection closed" not in caplog.text and "Exception in ASGI" not in caplog.text
