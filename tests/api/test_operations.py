"""Operating the gateway: metrics, structured logs, the check command, workers, shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import (
    AUTH,
    STARTUP_TIMEOUT_SECONDS,
    TRANSPORTS,
    Gateway,
    empty_database,
    gateway_env,
    start_gateway,
    stop_gateway,
)
from tests.api.test_durable_turns import LONG, wait_until_final
from tests.api.test_prompt import INSTANT, new_session
from tests.api.test_sessions import assert_problem
from tests.fakes.fake_paseo_versions import release as fake_release
from tests.fakes.harness import FakePaseoDaemon, Hold
from tests.sse import collect_turn, read_events, read_until


async def test_metrics(client: httpx.AsyncClient) -> None:
    session = await new_session(client)
    async with client.stream(
        "POST", f"/sessions/{session['id']}/prompt", json={"prompt": INSTANT}
    ) as response:
        await collect_turn(response)
    assert_problem(await client.get("/metrics", headers={"Authorization": ""}), 401, "unauthorized")
    assert (await client.get("/openapi.json")).status_code == 200
    assert (await client.get("/no/such/route")).status_code == 404
    text = (await client.get("/metrics")).text
    # FastAPI's own routes are named; only what matched no route is "unmatched".
    assert 'route="/openapi.json",status="200"' in text
    assert 'route="unmatched",status="404"' in text
    assert (
        'paseo_gateway_http_requests_total{method="POST",route="/sessions/{session_id}/prompt",'
        'status="200"}'
    ) in text
    assert 'paseo_gateway_turns_total{daemon="default",outcome="completed"}' in text
    assert "paseo_gateway_turn_duration_seconds_count" in text
    if (await client.get("/readyz")).json()["transport"] == "cli":
        assert 'paseo_gateway_cli_duration_seconds_count{command="run"}' in text
        assert "paseo_gateway_cli_slot_wait_seconds_count" in text
    else:
        created = (
            'paseo_gateway_daemon_request_duration_seconds_count{daemon="default",'
            'type="create_agent_request"}'
        )
        assert created in text and 'paseo_gateway_daemon_connected{daemon="default"} 1.0' in text
    assert 'paseo_gateway_daemon_up{daemon="default"} 1.0' in text
    assert "paseo_gateway_active_streams" in text and "paseo_gateway_cli_processes" in text
    assert session["id"] not in text  # routes are templates, never raw ids


def _start(daemon: FakePaseoDaemon, cwd: Path, folder: Path, url: str, **env: str) -> Gateway:
    return start_gateway(folder, gateway_env(url, daemon, cwd, **env))


async def test_json_logs_carry_request_and_turn_ids(
    fake_daemon: FakePaseoDaemon, agent_cwd: Path, tmp_path: Path
) -> None:
    with empty_database("sqlite", tmp_path) as url:
        gateway = _start(fake_daemon, agent_cwd, tmp_path, url, PASEO_GATEWAY_LOG_FORMAT="json")
        try:
            async with httpx.AsyncClient(base_url=gateway.url, headers=AUTH, timeout=60) as client:
                session = await new_session(client, provider="claude")  # its turns fail
                failed = await client.post(
                    f"/sessions/{session['id']}/prompt", json={"prompt": INSTANT}
                )
        finally:
            stop_gateway(gateway)
    request_id = failed.headers["x-request-id"]
    entries = [json.loads(line) for line in gateway.log().splitlines() if line.startswith("{")]
    assert entries and all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    assert any(e["request_id"] == request_id for e in entries)
    turn_lines = [e for e in entries if e.get("turn_id")]
    assert turn_lines and all(e["session_id"] == session["id"] for e in turn_lines)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_check_command(
    fake_daemon: FakePaseoDaemon, agent_cwd: Path, tmp_path: Path, transport: str
) -> None:
    env = gateway_env(
        f"sqlite+aiosqlite:///{tmp_path}/c.db",
        fake_daemon,
        agent_cwd,
        PASEO_GATEWAY_TRANSPORT=transport,
    )

    def check(**overrides: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app", "check"],
            env={**env, **overrides},
            capture_output=True,
            text=True,
            timeout=120,
        )

    good = check()
    assert good.returncode == 0, good.stdout + good.stderr
    assert "ok    daemon" in good.stdout and "FAIL" not in good.stdout
    assert f"transport {transport}" in good.stdout
    missing = check(PASEO_GATEWAY_PASEO_BIN=str(tmp_path / "nope"))
    if transport == "cli":
        assert missing.returncode == 1
        assert "FAIL  paseo_binary" in missing.stdout
        assert "PASEO_GATEWAY_PASEO_BIN" in missing.stdout
    else:  # the WebSocket needs no CLI; the daemon says who it is
        assert missing.returncode == 0 and "paseo_binary" not in missing.stdout
        assert f"version {fake_release().version}" in good.stdout and "server srv_" in good.stdout
        assert "; protocol: " in good.stdout  # how the transport speaks to this release
    down = check(PASEO_GATEWAY_PASEO_HOST="127.0.0.1:1")
    assert down.returncode == 1 and "Start the Paseo daemon" in down.stdout


async def test_several_workers(
    fake_daemon: FakePaseoDaemon, agent_cwd: Path, tmp_path: Path
) -> None:
    with empty_database("postgresql", tmp_path) as url:
        env = gateway_env(url, fake_daemon, agent_cwd)
        from tests.api.conftest import _free_port

        port = _free_port()
        log = (tmp_path / "workers.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, headers=AUTH, timeout=60) as client:
                await _wait_until_healthy(client, process, tmp_path / "workers.log")
                results = []
                for _ in range(4):
                    session = await new_session(client)
                    async with client.stream(
                        "POST", f"/sessions/{session['id']}/prompt", json={"prompt": INSTANT}
                    ) as response:
                        results.append((await collect_turn(response))[-1].event)
            assert results == ["turn.completed"] * 4
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
            log.close()


async def _wait_until_healthy(
    client: httpx.AsyncClient, process: subprocess.Popen[bytes], log: Path
) -> None:
    """Until /healthz answers 200; a server that exits or stays down that long fails the test."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while True:
        assert process.poll() is None, f"the server exited:\n{log.read_text(errors='replace')}"
        try:
            if (await client.get("/healthz", timeout=5)).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"no /healthz:\n{log.read_text(errors='replace')}"
        await asyncio.sleep(0.2)


async def test_shutdown_tells_streams_to_resume_elsewhere(
    fake_daemon: FakePaseoDaemon, agent_cwd: Path, tmp_path: Path, hold: Hold
) -> None:
    """The turn runs until the next gateway is up (`hold`): the stop comes mid-turn, however
    slow the machine, and the turn ends completed after it."""
    with empty_database("postgresql", tmp_path) as url:
        first = _start(fake_daemon, agent_cwd, tmp_path / "a", url)
        async with httpx.AsyncClient(base_url=first.url, headers=AUTH, timeout=60) as client:
            session = await new_session(client, **LONG)
            async with client.stream(
                "POST", f"/sessions/{session['id']}/prompt", json={"prompt": hold.prompt()}
            ) as response:
                turn_id = response.headers["x-turn-id"]
                stream = read_events(response)
                seen = await read_until(stream, "text")
                first.process.send_signal(signal.SIGTERM)  # a graceful stop, mid-turn
                seen += [event async for event in stream]
        first.process.wait(timeout=60)
        farewell = seen[-1]
        assert farewell.event == "gateway.shutdown"
        assert farewell.json()["events_url"].endswith(f"/turns/{turn_id}/events")
        assert farewell.json()["last_event_id"] == int(seen[-2].id or 0)

        second = _start(fake_daemon, agent_cwd, tmp_path / "b", url)
        hold.release()
        try:
            async with httpx.AsyncClient(base_url=second.url, headers=AUTH, timeout=60) as client:
                turn = await wait_until_final(client, session["id"], turn_id)
        finally:
            stop_gateway(second)
    assert turn["status"] == "completed"  # left recoverable, and recovered at once


async def test_shutdown_answers_a_waiting_chat_completion_with_where_its_turn_is(
    fake_daemon: FakePaseoDaemon, agent_cwd: Path, tmp_path: Path, hold: Hold
) -> None:
    """A non-streamed completion waits for its turn's end; a stopping gateway does not wait
    for it, and says where the turn (which goes on, `hold`: until the test ends) can be
    read."""
    with empty_database("sqlite", tmp_path) as url:
        gateway = _start(fake_daemon, agent_cwd, tmp_path, url)
        try:
            async with httpx.AsyncClient(base_url=gateway.url, headers=AUTH, timeout=60) as client:
                body = {
                    "model": "mock/one-minute-stream",
                    "messages": [{"role": "user", "content": hold.prompt()}],
                }
                waiting = asyncio.create_task(client.post("/v1/chat/completions", json=body))
                while not (await client.get("/metrics")).text.count(
                    "paseo_gateway_active_streams 1.0"
                ):
                    assert not waiting.done(), waiting.result().text
                    await asyncio.sleep(0.05)
                gateway.process.send_signal(signal.SIGTERM)
                answer = await waiting
            gateway.process.wait(timeout=60)
        finally:
            stop_gateway(gateway)
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert error["code"] == "gateway_shutdown" and error["type"] == "server_error"
    session_id, turn_id = answer.headers["x-paseo-session"], answer.headers["x-turn-id"]
    assert f"/sessions/{session_id}/turns/{turn_id}/events" in error["message"]
