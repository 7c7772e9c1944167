"""Durable turns: replay and resume, idempotency, interrupting, confirmed cancel, limits,
several gateways on one PostgreSQL, a gateway killed mid-turn, a daemon killed mid-turn."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from app.db import Database
from app.paseo.cli.transcript import last_reply, same_words
from app.repositories import turn_events as events_repo
from tests.api.conftest import (
    AUTH,
    Gateway,
    empty_database,
    gateway_env,
    gateway_transport,
    start_gateway,
    stop_gateway,
)
from tests.api.test_prompt import INSTANT, INSTANT_REPLY, new_session, text_of
from tests.api.test_sessions import assert_problem
from tests.fakes.harness import FakePaseoDaemon, Hold, running_fake_processes
from tests.sse import SseEvent, agent_id_in, collect_turn, read_events, read_until

# A turn that must still run after work of the test's own also takes `hold.prompt(...)` (the
# `hold` fixture): it streams until released, cancelled or interrupted, never ending first on
# a slow machine. The model sets only its pace (one event per ~4 ms at the test time scale).
LONG = {"provider": "mock", "model": "one-minute-stream"}
# Generous: a turn's end on a loaded 2-core machine (a recovery starts a gateway first).
FINAL_SECONDS = 120.0


async def replay(
    client: httpx.AsyncClient,
    session_id: str,
    turn_id: str,
    *,
    base: str = "",
    headers: dict[str, str] | None = None,
    **params: Any,
) -> list[SseEvent]:
    """A turn's event stream, read to its end (`base` for a client without a base URL)."""
    url = f"{base}/sessions/{session_id}/turns/{turn_id}/events"
    async with client.stream("GET", url, params=params, headers=headers or {}) as response:
        assert response.status_code == 200, await response.aread()
        return [event async for event in read_events(response)]


async def wait_until_final(
    client: httpx.AsyncClient, session_id: str, turn_id: str
) -> dict[str, Any]:
    """The turn once it has ended (a deadline in time, not a count of polls)."""
    deadline = time.monotonic() + FINAL_SECONDS
    while True:
        turn: dict[str, Any] = (await client.get(f"/sessions/{session_id}/turns/{turn_id}")).json()
        if turn["status"] not in ("queued", "running"):
            return turn
        assert time.monotonic() < deadline, f"turn {turn_id} still {turn['status']}"
        await asyncio.sleep(0.1)


@contextmanager
def gateway_on(
    database_url: str, daemon: FakePaseoDaemon, cwd: Path, folder: Path, **overrides: str
) -> Iterator[Gateway]:
    gateway = start_gateway(folder, gateway_env(database_url, daemon, cwd, **overrides))
    try:
        yield gateway
    finally:
        stop_gateway(gateway)


# --- replay and resume ---------------------------------------------------------------------


async def test_reconnect_with_last_event_id_gets_the_rest_once(client: httpx.AsyncClient) -> None:
    session = await new_session(client)
    seen: list[SseEvent] = []
    async with client.stream(
        "POST", f"/sessions/{session['id']}/prompt", json={"prompt": "write a haiku"}
    ) as response:
        turn_id = response.headers["x-turn-id"]
        assert response.headers["content-location"].endswith(f"/turns/{turn_id}/events")
        async for event in read_events(response):
            seen.append(event)
            if len(seen) == 6:
                break  # the connection drops mid-answer
    rest = await replay(client, session["id"], turn_id, headers={"Last-Event-ID": seen[-1].id})
    everything = await replay(client, session["id"], turn_id)  # a finished turn: replay, close
    ids = [int(e.id or 0) for e in seen + rest]
    assert ids == list(range(1, len(ids) + 1))  # every event once, in order
    assert [(e.id, e.event, e.data) for e in seen + rest] == [
        (e.id, e.event, e.data) for e in everything
    ]
    assert rest[-1].event == "turn.completed"
    assert rest[-1].json()["final_text"] == text_of(everything)
    after = await replay(client, session["id"], turn_id, after=len(ids) - 2)
    assert [e.id for e in after] == [str(len(ids) - 1), str(len(ids))]


async def test_events_route_errors(client: httpx.AsyncClient) -> None:
    session = await new_session(client)
    url = f"/sessions/{session['id']}/turns/{uuid.uuid4()}/events"
    assert_problem(await client.get(url), 404, "turn_not_found")
    assert_problem(
        await client.get(url, headers={"Last-Event-ID": "abc"}), 422, "validation_failed"
    )


# --- idempotency and interrupting ----------------------------------------------------------


async def test_idempotency_key_returns_the_same_turn(client: httpx.AsyncClient) -> None:
    session = await new_session(client)
    key = {"Idempotency-Key": f"retry-{uuid.uuid4()}"}
    url = f"/sessions/{session['id']}/prompt"
    async with client.stream("POST", url, json={"prompt": INSTANT}, headers=key) as first:
        first_events = await collect_turn(first)
    async with client.stream("POST", url, json={"prompt": INSTANT}, headers=key) as again:
        assert again.status_code == 200
        again_events = await collect_turn(again)
    assert first.headers["x-turn-id"] == again.headers["x-turn-id"]
    assert [(e.id, e.event) for e in again_events] == [(e.id, e.event) for e in first_events]
    other = await client.post(url, json={"prompt": "something else"}, headers=key)
    problem = assert_problem(other, 422, "idempotency_key_reused")
    assert problem["turn_id"] == first.headers["x-turn-id"]
    turns = (await client.get(f"/sessions/{session['id']}/turns")).json()
    assert turns["total"] == 1


async def test_interrupt_mode_replaces_the_running_turn(
    client: httpx.AsyncClient, hold: Hold
) -> None:
    session = await new_session(client, **LONG)
    url = f"/sessions/{session['id']}/prompt"
    async with client.stream("POST", url, json={"prompt": hold.prompt("long work")}) as old:
        old_events = read_events(old)
        await read_until(old_events, "text")
        async with client.stream("POST", url, json={"prompt": INSTANT, "mode": "interrupt"}) as new:
            assert new.status_code == 200
            new_events = await collect_turn(new)
        old_rest = [event async for event in old_events]
    assert old_rest[-1].event == "turn.interrupted"
    assert new_events[-1].event == "turn.completed"
    assert new_events[-1].json()["final_text"] == INSTANT_REPLY
    turns = (await client.get(f"/sessions/{session['id']}/turns")).json()["items"]
    assert [t["status"] for t in turns] == ["interrupted", "completed"]


async def test_concurrent_interrupts_each_replace_the_one_before(
    client: httpx.AsyncClient, hold: Hold
) -> None:
    """Five interrupts at once: every one is accepted (no 409 after a side effect), each
    replaced turn's stream ends, and the last one is what the agent answers.

    An instant prompt may finish before the next interrupt is admitted (the daemon transport
    is that fast): that one completes rather than being replaced. What must hold is that each
    turn ends completed or interrupted, and the last one completes with its own answer."""
    session = await new_session(client, **LONG)
    url = f"/sessions/{session['id']}/prompt"
    async with client.stream("POST", url, json={"prompt": hold.prompt("long work")}) as old:
        old_events = read_events(old)
        await read_until(old_events, "text")

        async def interrupt(n: int) -> tuple[int, list[SseEvent]]:
            prompt = f"emit {n + 1} coalesced agent stream updates"
            body = {"prompt": prompt, "mode": "interrupt"}
            async with client.stream("POST", url, json=body) as response:
                return response.status_code, await collect_turn(response)

        results = await asyncio.gather(*(interrupt(n) for n in range(5)))
        old_rest = [event async for event in old_events]
    assert [status for status, _ in results] == [200] * 5
    assert old_rest[-1].event == "turn.interrupted"
    endings = [events[-1].event for _, events in results]
    assert set(endings) <= {"turn.completed", "turn.interrupted"} and "turn.completed" in endings
    turns = (await client.get(f"/sessions/{session['id']}/turns")).json()["items"]
    assert {t["status"] for t in turns} <= {"completed", "interrupted"}
    last = turns[-1]
    assert last["status"] == "completed"
    n = int(last["prompt"].split()[1])
    assert last["final_text"] == "".join(f"stress-update-{i}" for i in range(n))
    detail = (await client.get(f"/sessions/{session['id']}")).json()
    assert detail["active_turn"] is None
    assert detail["agent"]["status"] == "idle"  # nothing left running that nobody follows


async def test_a_multi_line_prompt_gets_only_the_agents_answer(
    client: httpx.AsyncClient,
) -> None:
    """Paseo records the prompt trimmed; its second line is not the agent's text."""
    session = await new_session(client)
    url = f"/sessions/{session['id']}/prompt"
    async with client.stream("POST", url, json={"prompt": INSTANT + "\n"}) as first:
        assert (await collect_turn(first))[-1].json()["final_text"] == INSTANT_REPLY
    prompt = "emit 2 coalesced agent stream updates\nsecond line of the prompt\n"
    async with client.stream("POST", url, json={"prompt": prompt}) as second:
        events = await collect_turn(second)
    assert events[-1].event == "turn.completed"
    assert events[-1].json()["final_text"] == "stress-update-0stress-update-1"
    assert text_of(events) == "stress-update-0stress-update-1"


# --- cancel --------------------------------------------------------------------------------


async def test_cancel_a_turn_by_id_is_confirmed(client: httpx.AsyncClient, hold: Hold) -> None:
    session = await new_session(client, **LONG)
    async with client.stream(
        "POST", f"/sessions/{session['id']}/prompt", json={"prompt": hold.prompt("long work")}
    ) as running:
        turn_id = running.headers["x-turn-id"]
        stream = read_events(running)
        agent_id = agent_id_in(await read_until(stream, "text"))
        cancel = await client.post(f"/sessions/{session['id']}/turns/{turn_id}/cancel")
        rest = [event async for event in stream]
    assert cancel.status_code == 200 and cancel.json()["confirmed"] is True
    assert cancel.json()["turn"]["status"] == "cancelled"
    assert cancel.json()["turn"]["cancel_requested_at"]
    assert rest[-1].event == "turn.cancelled"
    agent = (await client.get(f"/agents/{agent_id}")).json()
    assert agent["status"] == "idle"
    again = await client.post(f"/sessions/{session['id']}/turns/{turn_id}/cancel")
    assert_problem(again, 409, "no_running_turn")


# --- limits ----------------------------------------------------------------------------------


def _attach_children_of(pid: int) -> list[psutil.Process]:
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if "attach" in child.cmdline():
                found.append(child)
        except psutil.Error:
            continue
    return found


async def test_idle_timeout_stops_a_silent_turn(
    fake_daemon: FakePaseoDaemon, agent_cwd: Path, tmp_path: Path, hold: Hold
) -> None:
    with (
        empty_database("sqlite", tmp_path) as url,
        gateway_on(
            url,
            fake_daemon,
            agent_cwd,
            tmp_path,
            PASEO_GATEWAY_TURN_IDLE_TIMEOUT_SECONDS="1.5",
            PASEO_GATEWAY_TRANSPORT="cli",  # it freezes the CLI's attach child
        ) as gateway,
    ):
        async with httpx.AsyncClient(headers=AUTH, base_url=gateway.url, timeout=60) as client:
            session = await new_session(client, **LONG)
            async with client.stream(
                "POST", f"/sessions/{session['id']}/prompt", json={"prompt": hold.prompt()}
            ) as response:
                stream = read_events(response)
                agent_id = agent_id_in(await read_until(stream, "text"))
                for attach in _attach_children_of(gateway.process.pid):
                    attach.send_signal(signal.SIGSTOP)  # the CLI hangs: no more output
                rest = [event async for event in stream]
            assert rest[-1].event == "turn.timed_out"
            assert rest[-1].json()["error_code"] == "turn_idle_timeout"
            agent = (await client.get(f"/agents/{agent_id}")).json()
            assert agent["status"] == "idle"  # the gateway stopped the agent
    assert running_fake_processes(home=fake_daemon.home) == []  # the stopped attach was killed


# Ten-second-stream emits an event every 5.27 ms of virtual time: scaled so, one every ~3 s.
SILENT_AGENT_TIME_SCALE = 570


async def test_idle_timeout_ends_a_turn_whose_agent_falls_silent(
    agent_cwd: Path, tmp_path: Path
) -> None:
    """On either transport: an agent that says nothing for longer than the idle limit gets
    its turn ended `timed_out` and is stopped."""
    with (
        FakePaseoDaemon(tmp_path / "home", time_scale=SILENT_AGENT_TIME_SCALE) as slow,
        empty_database("sqlite", tmp_path) as url,
        gateway_on(
            url, slow, agent_cwd, tmp_path / "gw", PASEO_GATEWAY_TURN_IDLE_TIMEOUT_SECONDS="1"
        ) as gateway,
    ):
        async with httpx.AsyncClient(headers=AUTH, base_url=gateway.url, timeout=60) as client:
            session = await new_session(client, provider="mock", model="ten-second-stream")
            async with client.stream(
                "POST", f"/sessions/{session['id']}/prompt", json={"prompt": "work"}
            ) as response:
                events = [event async for event in read_events(response)]
            assert events[-1].event == "turn.timed_out"
            assert events[-1].json()["error_code"] == "turn_idle_timeout"
            agent_id = (await client.get(f"/sessions/{session['id']}")).json()["agent_id"]
            agent = (await client.get(f"/agents/{agent_id}")).json()
            assert agent["status"] == "idle"  # the gateway stopped the agent


# --- several gateways on one PostgreSQL ----------------------------------------------------------


async def test_two_gateways_fifty_prompts_one_turn(
    fake_daemon: FakePaseoDaemon, agent_cwd: Path, tmp_path: Path, hold: Hold
) -> None:
    """The winner's turn runs until all fifty are answered (`hold`), then completes."""
    with (
        empty_database("postgresql", tmp_path) as url,
        gateway_on(url, fake_daemon, agent_cwd, tmp_path / "a") as first,
        gateway_on(url, fake_daemon, agent_cwd, tmp_path / "b") as second,
    ):
        async with httpx.AsyncClient(timeout=120, headers=AUTH) as client:
            created = await client.post(f"{first.url}/sessions", json={"title": "race", **LONG})
            session_id = created.json()["id"]

            async def prompt(n: int) -> tuple[int, int, str | None]:
                base = (first, second)[n % 2].url
                body = {"prompt": hold.prompt(f"try {n}")}
                async with client.stream(
                    "POST", f"{base}/sessions/{session_id}/prompt", json=body
                ) as response:
                    return response.status_code, n, response.headers.get("x-turn-id")

            results = await asyncio.gather(*(prompt(n) for n in range(50)))
            hold.release()
            statuses = sorted(status for status, _, _ in results)
            assert statuses == [200] + [409] * 49
            winner, turn_id = next((n, turn) for status, n, turn in results if status == 200)
            # The other gateway serves the turn's events live, though it does not run it.
            other = (first, second)[(winner + 1) % 2]
            watched = await replay(client, session_id, str(turn_id), base=other.url)
            turns = (await client.get(f"{second.url}/sessions/{session_id}/turns")).json()
    assert turns["total"] == 1
    assert watched[-1].event == "turn.completed"


# --- a gateway killed mid-turn ---------------------------------------------------------------


async def test_gateway_killed_mid_turn_is_recovered(
    fake_daemon: FakePaseoDaemon, agent_cwd: Path, tmp_path: Path, hold: Hold
) -> None:
    """The turn is held running until the next gateway follows it, so what is recovered is a
    live turn, resumed from its cursor, however long the restart takes; then it completes."""
    prompt = hold.prompt()
    fast_takeover = {
        "PASEO_GATEWAY_TURN_HEARTBEAT_SECONDS": "0.5",
        "PASEO_GATEWAY_TURN_STALE_SECONDS": "2",
    }
    with empty_database("postgresql", tmp_path) as url:
        doomed = start_gateway(tmp_path, gateway_env(url, fake_daemon, agent_cwd, **fast_takeover))
        try:
            async with httpx.AsyncClient(headers=AUTH, base_url=doomed.url, timeout=60) as client:
                session = await new_session(client, **LONG)
                before: list[SseEvent] = []
                async with client.stream(
                    "POST", f"/sessions/{session['id']}/prompt", json={"prompt": prompt}
                ) as response:
                    turn_id = response.headers["x-turn-id"]
                    async for event in read_events(response):
                        before.append(event)
                        if text_of(before).count(" ") > 30:
                            break
        finally:
            doomed.process.kill()  # SIGKILL: no shutdown code runs
            doomed.process.wait()
        assert await _no_paseo_children(fake_daemon) == []  # its children died with it
        stored = await _last_stored_seq(url, turn_id)  # all the killed gateway stored

        with gateway_on(url, fake_daemon, agent_cwd, tmp_path / "again", **fast_takeover) as gw:
            async with httpx.AsyncClient(headers=AUTH, base_url=gw.url, timeout=60) as client:
                await _first_event_after(client, session["id"], turn_id, stored)  # taken over
                hold.release()
                turn = await wait_until_final(client, session["id"], turn_id)
                events = await replay(client, session["id"], turn_id)
                running = (await client.get("/sessions", params={"status": "active"})).json()
                agent_id = (await client.get(f"/sessions/{session['id']}")).json()["agent_id"]
    assert turn["status"] == "completed"
    assert turn["final_text"] == text_of(events)
    assert turn["final_text"].startswith(text_of(before))  # nothing streamed was lost
    # ... and nothing doubled: resumed from its cursor, the turn is what the agent wrote.
    # `logs` shows the last 40 entries unless told otherwise: a held turn may be longer.
    transcript = fake_daemon.cli("logs", "--tail", "1000000", "--", agent_id).stdout
    answered = last_reply(transcript, prompt)
    assert answered is not None and same_words(answered, turn["final_text"])
    assert turn["final_text"].endswith("_(end of synthetic stream)_\n")
    assert events[-1].event == "turn.completed"
    # Stored before shown: the ids run without a gap, and what was shown live is replayed.
    ids = [int(e.id or 0) for e in events]
    assert ids == list(range(1, ids[-1] + 1))
    assert [(e.id, e.event, e.data) for e in events[: len(before)]] == [
        (e.id, e.event, e.data) for e in before
    ]
    assert running["total"] >= 1


async def _last_stored_seq(database_url: str, turn_id: str) -> int:
    """The number of the turn's last stored event (0: none)."""
    db = Database.from_url(database_url)
    try:
        async with db.session() as session:
            rows = await events_repo.list_events(session, uuid.UUID(turn_id), limit=10**6)
    finally:
        await db.dispose()
    return rows[-1].seq if rows else 0


async def _first_event_after(
    client: httpx.AsyncClient, session_id: str, turn_id: str, seq: int
) -> SseEvent:
    """The turn's first event numbered above `seq`: stored by whoever follows the turn now."""
    url = f"/sessions/{session_id}/turns/{turn_id}/events"
    async with asyncio.timeout(FINAL_SECONDS):
        async with client.stream("GET", url, params={"after": seq}) as response:
            assert response.status_code == 200, await response.aread()
            return await anext(read_events(response))


async def _readiness_becomes(client: httpx.AsyncClient, status: int) -> None:
    async with asyncio.timeout(120):
        while (await client.get("/readyz")).status_code != status:
            await asyncio.sleep(0.5)


async def _no_paseo_children(daemon: FakePaseoDaemon) -> list[tuple[int, list[str]]]:
    deadline = time.monotonic() + 60  # generous: a loaded machine
    while (left := running_fake_processes(home=daemon.home)) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return left


# --- the daemon killed mid-turn --------------------------------------------------------------


async def test_daemon_killed_mid_turn_fails_the_turn_then_recovers(
    agent_cwd: Path, tmp_path: Path, hold: Hold
) -> None:
    daemon = FakePaseoDaemon(tmp_path / "home", time_scale=0.1).start()
    try:
        with (
            empty_database("sqlite", tmp_path) as url,
            gateway_on(url, daemon, agent_cwd, tmp_path) as gateway,
        ):
            async with httpx.AsyncClient(headers=AUTH, base_url=gateway.url, timeout=60) as client:
                session = await new_session(client, **LONG)
                async with client.stream(
                    "POST", f"/sessions/{session['id']}/prompt", json={"prompt": hold.prompt()}
                ) as response:
                    stream = read_events(response)
                    await read_until(stream, "text")
                    daemon.kill()
                    rest = [event async for event in stream]
                assert rest[-1].event == "turn.failed"
                code, message = rest[-1].json()["error_code"], rest[-1].json()["message"]
                # The `wait` child may have connected before the kill, or tried after it; the
                # daemon transport loses its WebSocket and waits a moment for it to come back.
                if gateway_transport() == "daemon":
                    assert code == "daemon_not_running" and "lost the daemon" in message
                elif code == "daemon_not_running":
                    assert "Cannot connect to daemon" in message
                else:
                    assert code in ("send_failed", "wait_failed")
                    assert "Transport closed (code 1006)" in message
                # Readiness answers from a background check: it says so within its interval.
                await _readiness_becomes(client, 503)

                daemon.start()  # back: the gateway needs no restart
                await _readiness_becomes(client, 200)
                fresh = await new_session(client)
                async with client.stream(
                    "POST", f"/sessions/{fresh['id']}/prompt", json={"prompt": INSTANT}
                ) as response:
                    events = await collect_turn(response)
                assert events[-1].json()["final_text"] == INSTANT_REPLY
    finally:
        daemon.stop()
    assert running_fake_processes(home=daemon.home) == []


# --- agents changed outside the gateway ------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "status"), [("archive", "agent_archived"), ("delete", "agent_missing")]
)
async def test_sessions_learn_of_agents_changed_elsewhere(
    client: httpx.AsyncClient, fake_daemon: FakePaseoDaemon, command: str, status: str
) -> None:
    session = await new_session(client)
    async with client.stream(
        "POST", f"/sessions/{session['id']}/prompt", json={"prompt": INSTANT}
    ) as response:
        events = await collect_turn(response)
    agent_id = events[1].json()["agent_id"]
    assert fake_daemon.cli(command, "--json", "--", agent_id).returncode == 0
    detail = (await client.get(f"/sessions/{session['id']}")).json()
    assert detail["status"] == status
    listed = (await client.get("/sessions", params={"status": status})).json()
    assert session["id"] in [item["id"] for item in listed["items"]]


# --- review fixes: races and edges -----------------------------------------------------------


async def test_concurrent_retries_with_one_key_share_one_turn(client: httpx.AsyncClient) -> None:
    session = await new_session(client)
    key = {"Idempotency-Key": f"double-{uuid.uuid4()}"}

    async def submit() -> tuple[int, str | None, list[SseEvent]]:
        async with client.stream(
            "POST", f"/sessions/{session['id']}/prompt", json={"prompt": INSTANT}, headers=key
        ) as response:
            return (
                response.status_code,
                response.headers.get("x-turn-id"),
                await collect_turn(response),
            )

    results = await asyncio.gather(*(submit() for _ in range(5)))
    assert {status for status, _, _ in results} == {200}
    assert len({turn for _, turn, _ in results}) == 1
    for _, _, events in results:
        assert [e.event for e in events][-1] == "turn.completed"
        assert [int(e.id or 0) for e in events] == list(range(1, len(events) + 1))
    turns = (await client.get(f"/sessions/{session['id']}/turns")).json()
    assert turns["total"] == 1 and turns["items"][0]["status"] == "completed"


async def test_after_and_last_event_id_take_the_later(client: httpx.AsyncClient) -> None:
    session = await new_session(client)
    async with client.stream(
        "POST", f"/sessions/{session['id']}/prompt", json={"prompt": INSTANT}
    ) as response:
        events = await collect_turn(response)
    turn_id = events[0].json()["turn_id"]
    last = len(events)
    resumed = await replay(
        client, session["id"], turn_id, headers={"Last-Event-ID": str(last - 1)}, after=1
    )
    assert [e.id for e in resumed] == [str(last)]


async def test_resuming_a_finished_turn_from_its_end_closes_at_once(
    client: httpx.AsyncClient,
) -> None:
    session = await new_session(client)
    async with client.stream(
        "POST", f"/sessions/{session['id']}/prompt", json={"prompt": INSTANT}
    ) as response:
        events = await collect_turn(response)
    turn_id, last = events[0].json()["turn_id"], len(events)
    # No ping-only stream left open: the read ends (the client's timeout would fail it).
    for resume in ({"headers": {"Last-Event-ID": str(last)}}, {"after": last}, {"after": 999}):
        assert await replay(client, session["id"], turn_id, **resume) == []  # type: ignore[arg-type]


async def test_cancel_a_queued_turn(
    fake_daemon: FakePaseoDaemon, agent_cwd: Path, tmp_path: Path, hold: Hold
) -> None:
    with (
        empty_database("sqlite", tmp_path) as url,
        gateway_on(
            url, fake_daemon, agent_cwd, tmp_path, PASEO_GATEWAY_MAX_CONCURRENT_TURNS="1"
        ) as gateway,
    ):
        async with httpx.AsyncClient(headers=AUTH, base_url=gateway.url, timeout=60) as client:
            busy = await new_session(client, **LONG)
            waiting = await new_session(client)
            async with client.stream(
                "POST", f"/sessions/{busy['id']}/prompt", json={"prompt": hold.prompt()}
            ) as first:
                async with client.stream(
                    "POST", f"/sessions/{waiting['id']}/prompt", json={"prompt": INSTANT}
                ) as queued:
                    stream = read_events(queued)
                    names = [(await anext(stream)).event, (await anext(stream)).event]
                    cancel = await client.post(f"/sessions/{waiting['id']}/cancel")
                    rest = [event async for event in stream]
                await client.post(f"/sessions/{busy['id']}/cancel")
                await collect_turn(first)
    assert names == ["turn.started", "turn.queued"]
    assert cancel.status_code == 200 and cancel.json()["turn"]["status"] == "cancelled"
    assert rest[-1].event == "turn.cancelled"


async def test_importing_one_provider_session_twice_is_409(client: httpx.AsyncClient) -> None:
    body = {"provider": "claude", "provider_session_id": str(uuid.uuid4())}
    first = await client.post("/sessions/import", json=body)
    assert first.status_code == 201
    again = await client.post("/sessions/import", json=body)
    problem = assert_problem(again, 409, "session_exists")
    assert problem["session_id"] == first.json()["id"]


async def test_too_long_first_prompt_is_413_and_records_nothing(client: httpx.AsyncClient) -> None:
    session = await new_session(client)
    prompt = "x" * (200 * 1024)
    if (await client.get("/readyz")).json()["transport"] == "daemon":
        # The WebSocket carries any first prompt up to the gateway's own prompt limit.
        async with client.stream(
            "POST", f"/sessions/{session['id']}/prompt", json={"prompt": prompt}
        ) as response:
            assert response.status_code == 200
            started = await read_until(read_events(response), "turn.started")
            assert started[-1].event == "turn.started"
        return
    response = await client.post(f"/sessions/{session['id']}/prompt", json={"prompt": prompt})
    problem = assert_problem(response, 413, "payload_too_large")
    assert "first prompt" in problem["detail"]
    assert (await client.get(f"/sessions/{session['id']}/turns")).json()["total"] == 0
    before = (await client.get("/sessions")).json()["total"]
    created = await client.post("/sessions", json={"prompt": prompt})
    assert_problem(created, 413, "payload_too_large")
    assert (await client.get("/sessions")).json()["total"] == before  # one request, one outcome


async def test_daemon_password_never_reaches_a_client(
    fake_daemon: FakePaseoDaemon, agent_cwd: Path, tmp_path: Path
) -> None:
    secret = "hunter2-secret"
    with (
        empty_database("sqlite", tmp_path) as url,
        gateway_on(
            url,
            fake_daemon,
            agent_cwd,
            tmp_path,
            PASEO_GATEWAY_PASEO_HOST=f"tcp://127.0.0.1:1?password={secret}",
        ) as gateway,
    ):
        async with httpx.AsyncClient(headers=AUTH, base_url=gateway.url, timeout=60) as client:
            bodies = [
                (await client.get("/readyz")).text,
                (await client.get("/agents")).text,
            ]
            bodies.append((await client.post("/sessions", json={"prompt": INSTANT})).text)
        log = gateway.log()
    assert all(
        "Cannot connect" in body or "not_ready" in body or "failed" in body for body in bodies
    )
    assert not any(secret in body for body in bodies)
    assert secret not in log
