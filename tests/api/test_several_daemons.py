"""One gateway in front of three daemons, on two replicas sharing one PostgreSQL: placement,
pinning across replicas and restarts, a daemon killed mid-turn while the others go on,
agents merged and filtered, readiness and metrics per daemon."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import (
    AUTH,
    TRANSPORTS,
    Gateway,
    empty_database,
    gateway_env,
    start_gateway,
    stop_gateway,
)
from tests.api.test_durable_turns import LONG, wait_until_final
from tests.api.test_prompt import INSTANT, INSTANT_REPLY, stream_prompt
from tests.api.test_sessions import assert_problem
from tests.conftest import FAKE_TIME_SCALE
from tests.fakes.harness import FakePaseoDaemon, Hold, running_fake_processes
from tests.sse import read_events, read_until

NAMES = ("a", "b", "c")


@dataclass
class Fleet:
    daemons: dict[str, FakePaseoDaemon]
    gateways: list[Gateway]
    shared: Path  # a folder every daemon may work in
    only_a: Path  # a folder only daemon `a` may work in
    env: dict[str, str]
    folder: Path

    def restart(self, index: int) -> Gateway:
        """Stop one replica and start it again on the same database and daemons."""
        stop_gateway(self.gateways[index])
        self.gateways[index] = start_gateway(self.folder, self.env)
        return self.gateways[index]


@pytest.fixture(scope="module", params=TRANSPORTS)
def fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    folder = tmp_path_factory.mktemp(f"fleet-{request.param}")
    shared, only_a = folder / "shared", folder / "only-a"
    shared.mkdir()
    only_a.mkdir()
    daemons = {
        name: FakePaseoDaemon(folder / f"home-{name}", time_scale=FAKE_TIME_SCALE).start()
        for name in NAMES
    }
    roots = {"a": [str(shared), str(only_a)], "b": [str(shared)], "c": [str(shared)]}
    daemons_file = folder / "daemons.json"
    daemons_file.write_text(
        json.dumps(
            {
                "daemons": [
                    {
                        "name": name,
                        "host": daemon.host,
                        "home": str(daemon.home),
                        "workspace_roots": roots[name],
                    }
                    for name, daemon in daemons.items()
                ]
            }
        )
    )
    try:
        with empty_database("postgresql", folder) as url:
            env = gateway_env(
                url,
                daemons["a"],
                shared,
                PASEO_GATEWAY_TRANSPORT=request.param,
                PASEO_GATEWAY_DAEMONS_FILE=str(daemons_file),
                PASEO_GATEWAY_DAEMON_CHECK_SECONDS="0.5",
                PASEO_GATEWAY_MAX_CONCURRENT_TURNS="1",
            )
            gateways = [start_gateway(folder, env), start_gateway(folder, env)]
            fleet = Fleet(daemons, gateways, shared, only_a, env, folder)
            try:
                yield fleet
            finally:
                for gateway in fleet.gateways:
                    stop_gateway(gateway)
    finally:
        for daemon in daemons.values():
            daemon.stop()
    for daemon in daemons.values():
        assert running_fake_processes(home=daemon.home) == []


def _client(gateway: Gateway) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gateway.url, headers=AUTH, timeout=60)


async def _create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/sessions", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _ready_with(client: httpx.AsyncClient, up: set[str]) -> dict[str, Any]:
    """Readiness once exactly the daemons in `up` are up (the check runs every 0.5 s)."""
    async with asyncio.timeout(120):
        while True:
            body: dict[str, Any] = (await client.get("/readyz")).json()
            seen = {name for name in NAMES if body["checks"][f"daemon:{name}"]["ok"]}
            if seen == up:
                return body
            await asyncio.sleep(0.2)


async def _end_all(client: httpx.AsyncClient, sessions: list[dict[str, Any]]) -> None:
    """Cancel what still runs and wait for every turn's end: the next test places afresh."""
    for session in sessions:
        await client.post(f"/sessions/{session['id']}/cancel")
    for session in sessions:
        if session.get("turn"):
            await wait_until_final(client, session["id"], session["turn"]["id"])


# --- readiness and metrics -----------------------------------------------------------------


async def test_readiness_and_metrics_have_a_line_per_daemon(fleet: Fleet) -> None:
    async with _client(fleet.gateways[0]) as client:
        body = await _ready_with(client, set(NAMES))
        assert body["status"] == "ready"
        assert body["checks"]["daemon"]["ok"]
        assert body["checks"]["daemon"]["detail"] == "3 of 3 daemons up"
        metrics = (await client.get("/metrics")).text
    for name in NAMES:
        assert f'paseo_gateway_daemon_up{{daemon="{name}"}} 1.0' in metrics


# --- placement -----------------------------------------------------------------------------


async def test_sessions_go_where_the_fewest_turns_run_and_limits_are_per_daemon(
    fleet: Fleet, hold: Hold
) -> None:
    """With one turn at a time per daemon, three long turns on three daemons all run; a
    fourth waits (queued) behind the first daemon's, which it was placed on. The turns run
    until the test ends them (`hold`): none may end while the next sessions are made."""
    async with _client(fleet.gateways[0]) as client:
        await _ready_with(client, set(NAMES))
        sessions = []
        try:
            for _ in range(4):
                sessions.append(await _create(client, **LONG, prompt=hold.prompt()))
            assert [session["daemon"] for session in sessions] == ["a", "b", "c", "a"]
            statuses = [session["turn"]["status"] for session in sessions]
            assert statuses[:3] == ["running"] * 3 and statuses[3] == "queued"
            # The folder decides first, then a daemon the request names.
            only_a = await _create(client, cwd=str(fleet.only_a))
            named = await _create(client, daemon="c")
            assert (only_a["daemon"], named["daemon"]) == ("a", "c")
        finally:
            await _end_all(client, sessions)


async def test_what_no_daemon_can_take_is_refused_before_anything_is_stored(
    fleet: Fleet, tmp_path: Path
) -> None:
    async with _client(fleet.gateways[1]) as client:
        before = (await client.get("/sessions")).json()["total"]
        unknown = assert_problem(
            await client.post("/sessions", json={"daemon": "z"}), 422, "unknown_daemon"
        )
        assert "'a', 'b', 'c'" in unknown["detail"]
        outside = await client.post("/sessions", json={"cwd": str(tmp_path)})
        assert (
            "inside no daemon's workspace roots"
            in assert_problem(outside, 422, "invalid_input")["detail"]
        )
        # A daemon named: the folder must be inside that daemon's own roots.
        elsewhere = await client.post("/sessions", json={"daemon": "b", "cwd": str(fleet.only_a)})
        detail = assert_problem(elsewhere, 422, "invalid_input")["detail"]
        assert f"outside the workspace roots ({fleet.shared})" in detail
        assert (await client.get("/sessions")).json()["total"] == before


# --- pinning -------------------------------------------------------------------------------


async def test_a_session_stays_on_its_daemon_across_replicas_and_restarts(fleet: Fleet) -> None:
    async with _client(fleet.gateways[0]) as first:
        session = await _create(first, daemon="c")
        _, events = await stream_prompt(first, session["id"], INSTANT)
        assert events[0].json()["daemon"] == "c"
        agent_id = events[1].json()["agent_id"]
    second = fleet.restart(1)
    async with _client(second) as client:
        assert (await client.get(f"/sessions/{session['id']}")).json()["daemon"] == "c"
        _, events = await stream_prompt(client, session["id"], INSTANT)
        assert [event.event for event in events][-1] == "turn.completed"
        assert "agent.created" not in [event.event for event in events]  # the same agent
        assert events[-1].json()["final_text"] == INSTANT_REPLY
        on_c = (await client.get("/agents", params={"daemon": "c"})).json()
        on_a = (await client.get("/agents", params={"daemon": "a"})).json()
    assert agent_id in [agent["id"] for agent in on_c]
    assert agent_id not in [agent["id"] for agent in on_a]


# --- what the daemons have -----------------------------------------------------------------


async def test_agents_and_providers_are_merged_and_filtered(fleet: Fleet) -> None:
    async with _client(fleet.gateways[1]) as client:
        agents = {}
        for name in NAMES:
            session = await _create(client, daemon=name)
            _, events = await stream_prompt(client, session["id"], INSTANT)
            agents[events[1].json()["agent_id"]] = name
        merged = await client.get("/agents")
        assert merged.status_code == 200 and "x-unreachable-daemons" not in merged.headers
        where = {agent["id"]: agent["daemon"] for agent in merged.json()}
        assert {agent_id: where.get(agent_id) for agent_id in agents} == agents
        only_b = (await client.get("/agents", params={"daemon": "b"})).json()
        assert {agent["daemon"] for agent in only_b} == {"b"}
        assert {agent_id for agent_id, name in agents.items() if name == "b"} <= {
            agent["id"] for agent in only_b
        }
        agent_id = next(agent_id for agent_id, name in agents.items() if name == "c")
        detail = (await client.get(f"/agents/{agent_id}")).json()
        assert (detail["id"], detail["daemon"]) == (agent_id, "c")
        providers = (await client.get("/providers")).json()
        assert {(info["daemon"], info["provider"]) for info in providers} >= {
            (name, "mock") for name in NAMES
        }
        unknown = await client.get("/agents", params={"daemon": "z"})
        assert_problem(unknown, 422, "unknown_daemon")
        # An agent no session knows (made outside the gateway) is found by asking them all.
        made = fleet.daemons["b"].cli(
            "run", "-d", "--json", "--provider", "mock", "--", INSTANT, cwd=fleet.shared
        )
        assert made.returncode == 0, made.stderr
        outsider = json.loads(made.stdout)["agentId"]
        found = (await client.get(f"/agents/{outsider}")).json()
        assert (found["id"], found["daemon"]) == (outsider, "b")
        nowhere = await client.get(f"/agents/{uuid.uuid4()}")
        assert "no daemon has agent" in assert_problem(nowhere, 404, "agent_not_found")["detail"]


# --- a daemon down -------------------------------------------------------------------------


async def test_a_daemon_killed_mid_turn_fails_only_its_own_turns(fleet: Fleet, hold: Hold) -> None:
    """b dies while turns stream on a, b and c: b's turn fails, the others complete; the
    gateway stays ready, places new sessions elsewhere, names b where it is missed, and b
    rejoins without a restart. The turns run until released (`hold`), after the kill: all
    three are running when b dies, however slow the machine."""
    async with _client(fleet.gateways[0]) as client:
        await _ready_with(client, set(NAMES))
        sessions = {name: await _create(client, daemon=name, **LONG) for name in NAMES}
        streams = {}
        async with contextlib.AsyncExitStack() as stack:
            for name, session in sessions.items():
                response = await stack.enter_async_context(
                    client.stream(
                        "POST",
                        f"/sessions/{session['id']}/prompt",
                        json={"prompt": hold.prompt()},
                    )
                )
                assert response.status_code == 200
                streams[name] = read_events(response)
            for stream in streams.values():
                await read_until(stream, "text")
            fleet.daemons["b"].kill()
            hold.release()  # a's and c's turns go on to their end
            ends = {name: [event async for event in stream][-1] for name, stream in streams.items()}
        assert ends["a"].event == ends["c"].event == "turn.completed"
        assert ends["b"].event == "turn.failed"
        assert ends["b"].json()["message"].startswith("daemon 'b': ")

        body = await _ready_with(client, {"a", "c"})
        assert body["status"] == "ready"
        assert body["checks"]["daemon"]["detail"] == "2 of 3 daemons up; down: b"
        merged = await client.get("/agents")
        assert merged.status_code == 200 and merged.headers["x-unreachable-daemons"] == "b"
        assert {agent["daemon"] for agent in merged.json()} <= {"a", "c"}
        placed = [await _create(client) for _ in range(3)]
        assert "b" not in {session["daemon"] for session in placed}
        refused = await client.post(
            f"/sessions/{sessions['b']['id']}/prompt", json={"prompt": INSTANT}
        )
        problem = assert_problem(refused, 503, "daemon_unavailable")
        assert problem["daemon"] == "b" and "daemon 'b' is down" in problem["detail"]

        fleet.daemons["b"].start()
        await _ready_with(client, set(NAMES))
        again = await _create(client, daemon="b")
        _, events = await stream_prompt(client, again["id"], INSTANT)
        assert events[-1].event == "turn.completed"
        assert events[-1].json()["final_text"] == INSTANT_REPLY


async def test_daemons_may_be_listed_in_one_variable(fleet: Fleet, tmp_path: Path) -> None:
    """`PASEO_GATEWAY_DAEMONS=name=address,...`: every daemon shares the gateway's roots."""
    listed = f"x={fleet.daemons['a'].host},y={fleet.daemons['c'].host}"
    env = {**fleet.env, "PASEO_GATEWAY_DAEMONS": listed}
    del env["PASEO_GATEWAY_DAEMONS_FILE"]
    with empty_database("sqlite", tmp_path) as url:
        gateway = start_gateway(tmp_path, {**env, "PASEO_GATEWAY_DATABASE_URL": url})
        try:
            async with _client(gateway) as client:
                ready = (await client.get("/readyz")).json()
                assert {"daemon:x", "daemon:y"} <= set(ready["checks"])
                session = await _create(client, daemon="y", cwd=str(fleet.shared))
                _, events = await stream_prompt(client, session["id"], INSTANT)
                assert events[-1].json()["final_text"] == INSTANT_REPLY
                on_c = (await client.get("/agents", params={"daemon": "y"})).json()
                assert events[1].json()["agent_id"] in [agent["id"] for agent in on_c]
        finally:
            stop_gateway(gateway)
