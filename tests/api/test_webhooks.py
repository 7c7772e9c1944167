"""Webhooks end to end: real gateways (two replicas on one database, SQLite and PostgreSQL),
the fake daemon, and a real HTTP receiver on 127.0.0.1 that checks signatures with the
`standardwebhooks` package."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from standardwebhooks.webhooks import Webhook as Verifier

from tests.api.conftest import (
    AUTH,
    Gateway,
    empty_database,
    gateway_env,
    replica_pair,
    start_gateway,
)
from tests.api.test_durable_turns import gateway_on
from tests.api.test_prompt import new_session, stream_prompt
from tests.api.test_security import make_key
from tests.api.test_sessions import assert_problem
from tests.conftest import BACKENDS
from tests.fakes.harness import FakePaseoDaemon
from tests.sse import read_events, read_until
from tests.webhook_receiver import Received, Receiver

T = TypeVar("T")

# Local receivers over http, retries a moment apart, and workers that look often.
WEBHOOK_ENV = {
    "PASEO_GATEWAY_WEBHOOKS_ALLOW_HTTP": "true",
    "PASEO_GATEWAY_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
    "PASEO_GATEWAY_WEBHOOKS_RETRY_SECONDS": "0.3,0.3,0.3,0.3,0.3",
    "PASEO_GATEWAY_WEBHOOKS_POLL_SECONDS": "0.1",
    "PASEO_GATEWAY_WEBHOOKS_TIMEOUT_SECONDS": "10",
}
WAIT_SECONDS = 120.0
PLAN = "emit synthetic plan approval"  # the mock asks to approve a plan, then completes


@pytest.fixture(scope="module", params=BACKENDS)
def replicas(
    request: pytest.FixtureRequest,
    fake_daemon: FakePaseoDaemon,
    agent_cwd: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Gateway, Gateway]]:
    """Two gateways on one database: any of them may send any delivery."""
    folder = tmp_path_factory.mktemp(f"webhooks-{request.param}")
    with replica_pair(request.param, folder, fake_daemon, agent_cwd, **WEBHOOK_ENV) as pair:
        yield pair


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    started = Receiver().start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
async def clients(
    replicas: tuple[Gateway, Gateway],
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """A client on each replica, both with a new key of their own (prompt and webhooks), so a
    test's webhooks hear its own sessions only."""
    first, second = replicas
    async with httpx.AsyncClient(base_url=first.url, timeout=60, headers=AUTH) as admin:
        key = await make_key(admin, "prompt", "webhooks")
    async with (
        httpx.AsyncClient(base_url=first.url, timeout=60, headers=key) as a,
        httpx.AsyncClient(base_url=second.url, timeout=60, headers=key) as b,
    ):
        yield a, b


async def _webhook(client: httpx.AsyncClient, url: str, *events: str) -> dict[str, Any]:
    response = await client.post("/webhooks", json={"url": url, "events": list(events)})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _received(
    receiver: Receiver, condition: Callable[[list[Received]], bool]
) -> list[Received]:
    return await asyncio.to_thread(receiver.wait_for, condition, WAIT_SECONDS)


async def _eventually(check: Callable[[], Awaitable[T | None]], what: str) -> T:
    """Poll `check` until it gives something (the condition itself; no fixed sleep)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        found = await check()
        if found is not None:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def _deliveries(client: httpx.AsyncClient, webhook_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/webhooks/{webhook_id}/deliveries", params={"limit": 200})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _settled(items: list[dict[str, Any]], count: int) -> list[dict[str, Any]] | None:
    done = [item for item in items if item["status"] in ("delivered", "failed")]
    return items if len(items) == count and len(done) == count else None


def _verified(secret: str, received: Received) -> dict[str, Any]:
    payload: dict[str, Any] = Verifier(secret).verify(received.body, received.headers)
    return payload


# --- delivered, signed, once --------------------------------------------------------------------


async def test_a_completed_turn_is_delivered_once_signed_and_verifiable(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], receiver: Receiver
) -> None:
    a, b = clients
    hook = await _webhook(a, receiver.url, "turn.completed")
    assert hook["secret"].startswith("whsec_")
    assert "secret" not in (await b.get(f"/webhooks/{hook['id']}")).json()
    session = await new_session(a)
    response, events = await stream_prompt(a, session["id"], "write a haiku")
    assert events[-1].event == "turn.completed", [e.event for e in events]
    turn_id = response.headers["x-turn-id"]

    [item] = await _eventually(
        lambda: _maybe(_settled, _deliveries(b, hook["id"]), 1), "the delivery to settle"
    )
    assert (item["status"], item["attempts"], item["last_status_code"]) == ("delivered", 1, 200)
    assert (item["event"], item["turn_id"], item["session_id"]) == (
        "turn.completed",
        turn_id,
        session["id"],
    )
    [sent] = receiver.received  # delivered is final: nothing more can come
    assert sent.message_id == item["message_id"]
    payload = _verified(hook["secret"], sent)
    assert payload["type"] == "turn.completed"
    assert payload["data"] == {**events[-1].json(), "session_id": session["id"], "turn_id": turn_id}


async def _maybe(
    pick: Callable[[list[dict[str, Any]], int], list[dict[str, Any]] | None],
    items: Awaitable[list[dict[str, Any]]],
    count: int,
) -> list[dict[str, Any]] | None:
    return pick(await items, count)


async def _attempt_counts(replicas: tuple[Gateway, Gateway]) -> dict[str, float]:
    """`paseo_gateway_webhook_attempts_total` by outcome, summed over both replicas, and
    each replica's queue age gauge (under `queue_age`: the larger)."""
    counts: dict[str, float] = {}
    for gateway in replicas:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=60, headers=AUTH) as admin:
            text = (await admin.get("/metrics")).text
        for line in text.splitlines():
            if line.startswith("paseo_gateway_webhook_attempts_total{"):
                outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
                counts[outcome] = counts.get(outcome, 0.0) + float(line.rsplit(" ", 1)[1])
            elif line.startswith("paseo_gateway_webhook_queue_age_seconds "):
                age = float(line.rsplit(" ", 1)[1])
                counts["queue_age"] = max(counts.get("queue_age", 0.0), age)
    return counts


async def test_a_receiver_that_fails_twice_gets_three_attempts_with_one_id(
    replicas: tuple[Gateway, Gateway],
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    receiver: Receiver,
) -> None:
    a, b = clients
    before = await _attempt_counts(replicas)
    receiver.answers = [500, 503]
    hook = await _webhook(a, receiver.url, "session.created")
    session = await new_session(b)
    sent = await _received(receiver, lambda got: len(got) >= 3)
    assert len({one.message_id for one in sent}) == 1
    assert [_verified(hook["secret"], one)["data"]["session_id"] for one in sent] == [
        session["id"]
    ] * 3
    [item] = await _eventually(
        lambda: _maybe(_settled, _deliveries(a, hook["id"]), 1), "the delivery to settle"
    )
    assert (item["status"], item["attempts"], item["last_status_code"]) == ("delivered", 3, 200)
    assert len(receiver.received) == 3
    after = await _attempt_counts(replicas)
    assert after.get("retrying", 0) - before.get("retrying", 0) == 2
    assert after.get("delivered", 0) - before.get("delivered", 0) == 1
    assert after["queue_age"] < WAIT_SECONDS  # shown, and nothing has waited long


async def test_two_replicas_never_send_the_same_attempt_twice(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], receiver: Receiver
) -> None:
    a, b = clients
    hook = await _webhook(a, receiver.url, "session.created")
    made = [await new_session(client) for client in (a, b) * 10]
    items = await _eventually(
        lambda: _maybe(_settled, _deliveries(b, hook["id"]), len(made)), "every delivery"
    )
    assert {item["status"] for item in items} == {"delivered"}
    assert {item["attempts"] for item in items} == {1}
    ids = [one.message_id for one in receiver.received]
    assert sorted(ids) == sorted(item["message_id"] for item in items)  # each exactly once
    heard = {_verified(hook["secret"], one)["data"]["session_id"] for one in receiver.received}
    assert heard == {session["id"] for session in made}


async def test_the_permission_request_reaches_the_receiver_while_the_turn_waits(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], receiver: Receiver
) -> None:
    a, b = clients
    hook = await _webhook(a, receiver.url, "turn.permission_requested", "turn.completed")
    session = await new_session(a)
    request = a.build_request("POST", f"/sessions/{session['id']}/prompt", json={"prompt": PLAN})
    response = await a.send(request, stream=True)
    try:
        assert response.status_code == 200
        turn_id = response.headers["x-turn-id"]
        stream = read_events(response)
        [asked] = await _received(receiver, lambda got: len(got) >= 1)
        data = _verified(hook["secret"], asked)
        assert (data["type"], data["data"]["turn_id"]) == ("turn.permission_requested", turn_id)
        turn = (await b.get(f"/sessions/{session['id']}/turns/{turn_id}")).json()
        assert turn["status"] == "waiting_permission"  # the turn waits for a person
        permission_id = data["data"]["permission_id"]
        answered = await b.post(
            f"/sessions/{session['id']}/permissions/{permission_id}", json={"behavior": "allow"}
        )
        assert answered.status_code == 200, answered.text
        rest = await read_until(stream, "turn.completed")
        assert rest[-1].event == "turn.completed"
    finally:
        await response.aclose()
    sent = await _received(receiver, lambda got: len(got) >= 2)
    assert [_verified(hook["secret"], one)["type"] for one in sent] == [
        "turn.permission_requested",
        "turn.completed",
    ]


async def test_410_switches_the_webhook_off(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], receiver: Receiver
) -> None:
    a, _ = clients
    receiver.answers = [410]
    hook = await _webhook(a, receiver.url, "session.created")
    await new_session(a)
    [item] = await _eventually(
        lambda: _maybe(_settled, _deliveries(a, hook["id"]), 1), "the delivery to settle"
    )
    assert (item["status"], item["last_status_code"]) == ("failed", 410)
    now = (await a.get(f"/webhooks/{hook['id']}")).json()
    assert now["enabled"] is False and "410" in now["disabled_reason"]
    await new_session(a)  # a disabled webhook hears nothing more
    assert len(await _deliveries(a, hook["id"])) == 1
    assert len(receiver.received) == 1


# --- managing them ------------------------------------------------------------------------------


async def test_a_key_manages_its_own_webhooks_and_an_admin_sees_all(
    replicas: tuple[Gateway, Gateway],
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    receiver: Receiver,
) -> None:
    a, _ = clients
    async with httpx.AsyncClient(base_url=replicas[0].url, timeout=60, headers=AUTH) as admin:
        other = await make_key(admin, "webhooks")
        reader = await make_key(admin, "prompt")
        hook = await _webhook(a, receiver.url, "session.created")
        listed = (await admin.get("/webhooks", params={"limit": 200})).json()
        assert hook["id"] in [item["id"] for item in listed["items"]]
        assert hook["sees_all"] is False
        admins = await _webhook(admin, receiver.url, "session.closed")
        assert admins["sees_all"] is True
    url = f"/webhooks/{hook['id']}"
    for headers in (other,):
        assert_problem(await a.get(url, headers=headers), 404, "webhook_not_found")
        assert_problem(await a.delete(url, headers=headers), 404, "webhook_not_found")
    assert_problem(await a.get("/webhooks", headers=reader), 403, "insufficient_scope")
    mine = (await a.get("/webhooks")).json()
    assert [item["id"] for item in mine["items"]] == [hook["id"]]

    changed = await a.patch(url, json={"events": ["turn.failed", "turn.completed"]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["events"] == ["turn.completed", "turn.failed"]
    off = (await a.patch(url, json={"enabled": False})).json()
    assert off["enabled"] is False
    assert_problem(await a.patch(url, json={"events": []}), 422, "validation_failed")
    assert_problem(await a.patch(url, json={"secret": "x"}), 422, "validation_failed")
    assert (await a.delete(url)).status_code == 204
    assert_problem(await a.get(url), 404, "webhook_not_found")


async def test_a_delivery_is_sent_again_on_request_with_the_same_id(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], receiver: Receiver
) -> None:
    a, b = clients
    hook = await _webhook(a, receiver.url, "session.created")
    await new_session(a)
    [item] = await _eventually(
        lambda: _maybe(_settled, _deliveries(a, hook["id"]), 1), "the delivery to settle"
    )
    base = f"/webhooks/{hook['id']}/deliveries"
    retried = await b.post(f"{base}/{item['id']}/retry")
    assert retried.status_code == 202, retried.text
    sent = await _received(receiver, lambda got: len(got) >= 2)
    assert [one.message_id for one in sent] == [item["message_id"]] * 2
    missing = "00000000-0000-0000-0000-000000000000"
    assert_problem(await a.post(f"{base}/{missing}/retry"), 404, "delivery_not_found")


# --- refused targets (the shared gateways: https only, public addresses only) ---------------


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://hooks.example.com/x", "webhook_url_invalid"),
        ("https://user:secret@hooks.example.com/x", "webhook_url_invalid"),
        ("https://127.0.0.1/hook", "webhook_target_private"),
        ("https://localhost:8443/hook", "webhook_target_private"),
        ("https://169.254.169.254/latest/meta-data", "webhook_target_private"),
        ("https://[::1]/hook", "webhook_target_private"),
        ("https://no-such-host.invalid/hook", "webhook_host_unresolvable"),
    ],
)
async def test_a_target_that_is_not_allowed_is_refused_with_what_to_fix(
    client: httpx.AsyncClient, url: str, code: str
) -> None:
    response = await client.post("/webhooks", json={"url": url, "events": ["turn.completed"]})
    assert_problem(response, 422, code)


async def test_unknown_events_are_refused_naming_the_known_ones(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/webhooks", json={"url": "https://hooks.example.com/", "events": ["turn.done"]}
    )
    problem = assert_problem(response, 422, "validation_failed")
    assert "turn.completed" in str(problem)


# --- a gateway killed while the receiver is down --------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_delivery_queued_before_a_sigkill_arrives_after_the_restart(
    backend: str, fake_daemon: FakePaseoDaemon, agent_cwd: Path, tmp_path: Path
) -> None:
    receiver = Receiver().start()
    receiver.stop()  # down: its port is known, nothing listens there
    env = {**WEBHOOK_ENV, "PASEO_GATEWAY_WEBHOOKS_RETRY_SECONDS": ",".join(["0.5"] * 50)}
    with empty_database(backend, tmp_path) as url:
        first = start_gateway(tmp_path, gateway_env(url, fake_daemon, agent_cwd, **env))
        try:
            async with httpx.AsyncClient(base_url=first.url, timeout=60, headers=AUTH) as client:
                hook = await _webhook(client, receiver.url, "session.created")
                await new_session(client)
                [failing] = await _eventually(
                    lambda: _failed_once(client, hook["id"]), "a failed attempt"
                )
        finally:
            first.process.kill()  # SIGKILL: no shutdown code runs
            first.process.wait()
        receiver.start()
        try:
            with gateway_on(url, fake_daemon, agent_cwd, tmp_path, **env) as second:
                [sent] = await _received(receiver, lambda got: len(got) >= 1)
                assert sent.message_id == failing["message_id"]
                assert _verified(hook["secret"], sent)["type"] == "session.created"
                async with httpx.AsyncClient(base_url=second.url, timeout=60, headers=AUTH) as c:
                    [item] = await _eventually(
                        lambda: _maybe(_settled, _deliveries(c, hook["id"]), 1), "delivered"
                    )
                assert item["status"] == "delivered" and item["attempts"] > failing["attempts"]
        finally:
            receiver.stop()


async def _failed_once(client: httpx.AsyncClient, webhook_id: str) -> list[dict[str, Any]] | None:
    items = await _deliveries(client, webhook_id)
    if len(items) == 1 and items[0]["attempts"] >= 1 and items[0]["last_error"]:
        return items
    return None
