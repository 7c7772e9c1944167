"""Keys, scopes, ownership, stream tokens, rate limits, CORS, workspace roots, request ids."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import BODY_OVERHEAD_BYTES
from app.paseo.daemon.client import DaemonPaseoClient
from app.paseo.daemon.target import parse_host
from app.services.prompt_media import image_body_bytes
from tests.api.conftest import (
    AUTH,
    Gateway,
    empty_database,
    gateway_env,
    start_gateway,
    stop_gateway,
)
from tests.api.test_prompt import INSTANT, new_session
from tests.api.test_sessions import assert_problem
from tests.fakes.harness import FakePaseoDaemon, argv_log
from tests.sse import collect_turn, read_events

PROTECTED = [
    ("GET", "/sessions"),
    ("POST", "/sessions"),
    ("GET", f"/sessions/{uuid.uuid4()}"),
    ("PATCH", f"/sessions/{uuid.uuid4()}"),
    ("POST", f"/sessions/{uuid.uuid4()}/prompt"),
    ("GET", f"/sessions/{uuid.uuid4()}/turns/{uuid.uuid4()}/events"),
    ("GET", "/agents"),
    ("GET", "/providers"),
    ("GET", "/keys"),
]


async def make_key(client: httpx.AsyncClient, *scopes: str) -> dict[str, str]:
    """A new key with `scopes`; returns the Authorization header for it."""
    response = await client.post("/keys", json={"name": "test", "scopes": list(scopes)})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['secret']}"}


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_no_key_is_401_with_a_challenge(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path, headers={"Authorization": ""}, json={})
    problem = assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in problem["detail"]
    wrong = await client.request(
        method, path, headers={"Authorization": "Bearer pgw_nope"}, json={}
    )
    assert_problem(wrong, 401, "unauthorized")
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]


async def test_public_routes_need_no_key(client: httpx.AsyncClient) -> None:
    bare = {"Authorization": ""}
    for path in ("/healthz", "/readyz", "/docs", "/openapi.json"):
        assert (await client.get(path, headers=bare)).status_code == 200, path
    # A public page with a trailing slash redirects to it, as it does with a key.
    slashed = await client.get("/docs/", headers=bare)
    assert slashed.status_code == 307 and slashed.headers["location"].endswith("/docs")


async def test_a_path_no_route_serves_is_404_with_or_without_a_key(
    client: httpx.AsyncClient,
) -> None:
    for headers in ({"Authorization": ""}, {}):
        assert_problem(await client.get("/no/such/route", headers=headers), 404, "route_not_found")
    # A protected route's path with another method still needs a key first.
    assert_problem(
        await client.put("/sessions", headers={"Authorization": ""}), 401, "unauthorized"
    )


async def test_scopes(client: httpx.AsyncClient) -> None:
    reader = await make_key(client, "read")
    prompter = await make_key(client, "prompt")
    assert (await client.get("/sessions", headers=reader)).status_code == 200
    problem = assert_problem(
        await client.post("/sessions", json={}, headers=reader), 403, "insufficient_scope"
    )
    assert problem["scope"] == "prompt"
    created = await client.post("/sessions", json={}, headers=prompter)
    assert created.status_code == 201
    steer = f"/sessions/{created.json()['id']}"
    assert_problem(
        await client.patch(steer, json={"title": "x"}, headers=reader), 403, "insufficient_scope"
    )
    assert (await client.patch(steer, json={"title": "x"}, headers=prompter)).status_code == 200
    assert_problem(await client.get("/keys", headers=prompter), 403, "insufficient_scope")


async def test_another_key_cannot_see_my_session(client: httpx.AsyncClient) -> None:
    alice, bob = await make_key(client, "prompt"), await make_key(client, "prompt")
    session = (await client.post("/sessions", json={}, headers=alice)).json()
    async with client.stream(
        "POST", f"/sessions/{session['id']}/prompt", json={"prompt": INSTANT}, headers=alice
    ) as response:
        events = await collect_turn(response)
    turn_id, agent_id = events[0].json()["turn_id"], events[1].json()["agent_id"]
    base = f"/sessions/{session['id']}"
    for method, path in [
        ("GET", base),
        ("PATCH", base),
        ("DELETE", base),
        ("GET", f"{base}/turns"),
        ("GET", f"{base}/turns/{turn_id}"),
        ("GET", f"{base}/turns/{turn_id}/events"),
        ("POST", f"{base}/prompt"),
        ("POST", f"{base}/cancel"),
        ("POST", f"{base}/turns/{turn_id}/cancel"),
    ]:
        body = {"prompt": INSTANT} if path.endswith("/prompt") else None
        body = {"title": "mine now"} if method == "PATCH" else body
        response = await client.request(method, path, headers=bob, json=body)
        assert_problem(response, 404, "session_not_found")
    for method, path in [
        ("GET", f"/agents/{agent_id}"),
        ("POST", f"/agents/{agent_id}/stop"),
        ("POST", f"/agents/{agent_id}/archive"),
    ]:
        assert_problem(await client.request(method, path, headers=bob), 404, "agent_not_found")
    bobs = (await client.get("/sessions", headers=bob)).json()
    assert session["id"] not in [item["id"] for item in bobs["items"]]
    assert agent_id not in [a["id"] for a in (await client.get("/agents", headers=bob)).json()]
    mine = (await client.get("/agents", headers=alice)).json()
    assert [a["id"] for a in mine] == [agent_id]
    assert (await client.get(base)).status_code == 200  # the admin sees everything


async def test_revoked_key_stops_at_once(client: httpx.AsyncClient) -> None:
    created = (await client.post("/keys", json={"name": "gone", "scopes": ["read"]})).json()
    headers = {"Authorization": f"Bearer {created['secret']}"}
    assert (await client.get("/sessions", headers=headers)).status_code == 200
    listed = (await client.get("/keys")).json()
    assert created["id"] in [key["id"] for key in listed]
    assert all("secret" not in key for key in listed)
    revoked = await client.delete(f"/keys/{created['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert_problem(await client.get("/sessions", headers=headers), 401, "unauthorized")
    assert_problem(await client.delete(f"/keys/{uuid.uuid4()}"), 404, "not_found")


async def test_stream_token_opens_only_its_turn(client: httpx.AsyncClient) -> None:
    session = await new_session(client)
    async with client.stream(
        "POST", f"/sessions/{session['id']}/prompt", json={"prompt": INSTANT}
    ) as response:
        token = response.headers["x-stream-token"]
        events = await collect_turn(response)
    turn_id = events[0].json()["turn_id"]
    url = f"/sessions/{session['id']}/turns/{turn_id}/events"
    bare = {"Authorization": ""}
    async with client.stream("GET", url, params={"token": token}, headers=bare) as replayed:
        assert replayed.status_code == 200
        again = [event async for event in read_events(replayed)]
    assert [e.id for e in again] == [e.id for e in events]
    other = f"/sessions/{session['id']}/turns/{uuid.uuid4()}/events"
    assert_problem(
        await client.get(other, params={"token": token}, headers=bare), 401, "unauthorized"
    )
    assert_problem(
        await client.get(url, params={"token": token[:-4] + "AAAA"}, headers=bare),
        401,
        "unauthorized",
    )
    assert_problem(
        await client.get("/sessions", params={"token": token}, headers=bare), 401, "unauthorized"
    )


async def test_stream_token_dies_with_its_key(client: httpx.AsyncClient) -> None:
    """A token stands for the key it was issued to: revoking the key ends it at once."""
    created = (await client.post("/keys", json={"name": "brief", "scopes": ["prompt"]})).json()
    headers = {"Authorization": f"Bearer {created['secret']}"}
    session = (await client.post("/sessions", json={}, headers=headers)).json()
    async with client.stream(
        "POST", f"/sessions/{session['id']}/prompt", json={"prompt": INSTANT}, headers=headers
    ) as response:
        token = response.headers["x-stream-token"]
        events = await collect_turn(response)
    url = f"/sessions/{session['id']}/turns/{events[0].json()['turn_id']}/events"
    bare = {"Authorization": ""}
    async with client.stream("GET", url, params={"token": token}, headers=bare) as replayed:
        assert replayed.status_code == 200
        await replayed.aread()

    assert (await client.delete(f"/keys/{created['id']}")).status_code == 200

    problem = assert_problem(
        await client.get(url, params={"token": token}, headers=bare), 401, "unauthorized"
    )
    assert "revoked" in problem["detail"]
    assert (await client.get(url)).status_code == 200  # the admin still reads it


async def test_request_id_header(client: httpx.AsyncClient) -> None:
    generated = await client.get(f"/sessions/{uuid.uuid4()}")
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])
    echoed = await client.get("/healthz", headers={"X-Request-ID": "trace-42"})
    assert echoed.headers["x-request-id"] == "trace-42"
    odd = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert odd.headers["x-request-id"] != "bad id\twith spaces"


async def test_cors_is_closed_by_default(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/sessions",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in response.headers


# --- workspace roots -------------------------------------------------------------------------


async def test_cwd_is_confined_to_the_workspace_roots(
    client: httpx.AsyncClient, agent_cwd: Path
) -> None:
    inside = agent_cwd / "repo"
    inside.mkdir(exist_ok=True)
    escape = agent_cwd / "escape"
    if not escape.is_symlink():
        escape.symlink_to("/etc")
    ok = await client.post("/sessions", json={"cwd": str(inside)})
    assert ok.status_code == 201 and ok.json()["cwd"] == str(inside.resolve())
    for cwd in ("/etc", str(escape), f"{inside}/../../..", "/", str(agent_cwd) + "-sibling"):
        problem = assert_problem(
            await client.post("/sessions", json={"cwd": cwd}), 422, "invalid_input"
        )
        assert "cwd" in problem["detail"]
    assert_problem(await client.post("/sessions", json={"cwd": "~/.ssh"}), 422, "validation_failed")


# --- gateways with other settings --------------------------------------------------------------


@pytest.fixture
def gateway_with(fake_daemon: FakePaseoDaemon, agent_cwd: Path, tmp_path: Path) -> Iterator[Any]:
    started: list[Gateway] = []

    def start(**overrides: str) -> Gateway:
        folder = tmp_path / f"gw{len(started)}"
        with empty_database("sqlite", folder) as url:
            gateway = start_gateway(folder, gateway_env(url, fake_daemon, agent_cwd, **overrides))
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        stop_gateway(gateway)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=60) as client:
        yield client


async def test_rate_limit_per_key(gateway_with: Any, http: httpx.AsyncClient) -> None:
    gateway = gateway_with(PASEO_GATEWAY_PROMPT_RATE_LIMIT_PER_MINUTE="2")
    for n in range(3):
        session = (await http.post(f"{gateway.url}/sessions", json={}, headers=AUTH)).json()
        async with http.stream(
            "POST",
            f"{gateway.url}/sessions/{session['id']}/prompt",
            json={"prompt": INSTANT},
            headers=AUTH,
        ) as response:
            if n < 2:
                assert response.status_code == 200
                await collect_turn(response)
            else:
                await response.aread()
                problem = assert_problem(response, 429, "rate_limited")
                assert 1 <= int(response.headers["retry-after"]) <= 60
                assert "limit is 2" in problem["detail"]


async def test_rate_limit_holds_for_prompts_at_the_same_instant(
    gateway_with: Any, http: httpx.AsyncClient
) -> None:
    """Counting and recording are one step: simultaneous prompts never overshoot the limit."""
    gateway = gateway_with(PASEO_GATEWAY_PROMPT_RATE_LIMIT_PER_MINUTE="2")
    sessions = [
        (await http.post(f"{gateway.url}/sessions", json={}, headers=AUTH)).json() for _ in range(5)
    ]

    async def prompt(session: dict[str, Any]) -> int:
        async with http.stream(
            "POST",
            f"{gateway.url}/sessions/{session['id']}/prompt",
            json={"prompt": INSTANT},
            headers=AUTH,
        ) as response:
            if response.status_code == 200:
                await collect_turn(response)
            else:
                await response.aread()
                assert_problem(response, 429, "rate_limited")
            return response.status_code

    statuses = await asyncio.gather(*(prompt(session) for session in sessions))

    assert sorted(statuses) == [200, 200, 429, 429, 429]


async def test_cors_allows_configured_origins(gateway_with: Any, http: httpx.AsyncClient) -> None:
    gateway = gateway_with(PASEO_GATEWAY_CORS_ORIGINS="https://ui.example")
    preflight = await http.options(
        f"{gateway.url}/sessions",
        headers={
            "Origin": "https://ui.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.headers["access-control-allow-origin"] == "https://ui.example"
    other = await http.get(f"{gateway.url}/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    refused = await http.get(f"{gateway.url}/sessions", headers={"Origin": "https://ui.example"})
    assert refused.status_code == 401  # and the browser may read why:
    assert refused.headers["access-control-allow-origin"] == "https://ui.example"


async def test_first_start_prints_an_admin_key_once(
    gateway_with: Any, http: httpx.AsyncClient
) -> None:
    gateway = gateway_with(PASEO_GATEWAY_ADMIN_KEY="")
    printed = re.findall(r"pgw_[A-Za-z0-9_-]{20,}", gateway.log())
    assert len(printed) == 1
    headers = {"Authorization": f"Bearer {printed[0]}"}
    assert (await http.get(f"{gateway.url}/keys", headers=headers)).status_code == 200


async def test_auth_can_be_disabled_for_loopback(
    gateway_with: Any, http: httpx.AsyncClient
) -> None:
    gateway = gateway_with(PASEO_GATEWAY_AUTH_DISABLED="true")
    assert (await http.get(f"{gateway.url}/sessions")).status_code == 200


async def test_with_keys_disabled_a_stream_token_of_no_key_opens_its_turn(
    gateway_with: Any, http: httpx.AsyncClient
) -> None:
    gateway = gateway_with(PASEO_GATEWAY_AUTH_DISABLED="true")
    session = (await http.post(f"{gateway.url}/sessions", json={})).json()
    async with http.stream(
        "POST", f"{gateway.url}/sessions/{session['id']}/prompt", json={"prompt": INSTANT}
    ) as response:
        token = response.headers["x-stream-token"]
        events = await collect_turn(response)
    url = f"{gateway.url}/sessions/{session['id']}/turns/{events[0].json()['turn_id']}/events"
    async with http.stream("GET", url, params={"token": token}) as replayed:
        assert replayed.status_code == 200
        assert [e.id async for e in read_events(replayed)] == [e.id for e in events]


def test_auth_disabled_refuses_a_public_bind(tmp_path: Path) -> None:
    env = {**os.environ, "PASEO_GATEWAY_AUTH_DISABLED": "true"}
    env["PASEO_GATEWAY_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/x.db"
    result = subprocess.run(
        [sys.executable, "-m", "app", "serve", "--host", "0.0.0.0", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "loopback" in result.stderr


# Prompts that look like options, or carry line breaks and non-ASCII text.
TRICKY_PROMPTS = [
    "--host=evil:1 emit 1 coalesced agent stream updates",
    "-x\n--prompt-file=/etc/passwd\n\u00e9\u6771 emit 1 coalesced agent stream updates",
]


async def _send_each(http: httpx.AsyncClient, gateway: Gateway, prompts: list[str]) -> str:
    """A new session gets every prompt, each run to completion; returns the session id."""
    session = (await http.post(f"{gateway.url}/sessions", json={}, headers=AUTH)).json()
    for prompt in prompts:
        async with http.stream(
            "POST",
            f"{gateway.url}/sessions/{session['id']}/prompt",
            json={"prompt": prompt},
            headers=AUTH,
        ) as response:
            events = await collect_turn(response)
        assert events[-1].event == "turn.completed"
    return str(session["id"])


async def test_prompts_reach_the_daemon_verbatim(
    gateway_with: Any, http: httpx.AsyncClient, fake_daemon: FakePaseoDaemon
) -> None:
    """Over the WebSocket a prompt is one JSON string: what the daemon records is it."""
    gateway = gateway_with(PASEO_GATEWAY_TRANSPORT="daemon")
    session_id = await _send_each(http, gateway, TRICKY_PROMPTS)
    detail = (await http.get(f"{gateway.url}/sessions/{session_id}", headers=AUTH)).json()
    daemon = DaemonPaseoClient(parse_host(fake_daemon.host))
    try:
        for prompt in TRICKY_PROMPTS:
            history = await daemon.prompt_history(detail["agent_id"], prompt)
            assert history.times_recorded == 1, prompt
    finally:
        await daemon.aclose()


async def test_prompts_reach_the_cli_verbatim(
    gateway_with: Any, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    log = tmp_path / "argv.jsonl"
    gateway = gateway_with(FAKE_PASEO_ARGV_LOG=str(log), PASEO_GATEWAY_TRANSPORT="cli")
    await _send_each(http, gateway, TRICKY_PROMPTS)
    entries = argv_log(log)
    received = [e["prompt"] for e in entries if e["argv"][0] in ("run", "send")]
    assert received == TRICKY_PROMPTS
    for entry in entries:  # options end at `--`; a prompt is only ever after it
        options = entry["argv"][: entry["argv"].index("--")] if "--" in entry["argv"] else []
        assert not any(arg.startswith("--host") for arg in options)


def test_keys_command(tmp_path: Path) -> None:
    env = {**os.environ, "PASEO_GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/k.db"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app", "keys", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    created = run("create", "--name", "ci", "--scope", "prompt")
    assert created.returncode == 0, created.stderr
    key_id = re.search(r"id:\s+(\S+)", created.stdout)
    assert key_id and re.search(r"secret: pgw_\S{20,}", created.stdout)
    listed = run("list")
    assert key_id.group(1) in listed.stdout and "pgw_" in listed.stdout
    assert "secret" not in listed.stdout
    assert run("revoke", key_id.group(1)).returncode == 0
    assert key_id.group(1) not in run("list").stdout
    assert "revoked" in run("list", "--revoked").stdout
    assert run("create", "--name", "x", "--scope", "root").returncode != 0


async def test_oversize_bodies_are_refused_before_they_are_read(
    client: httpx.AsyncClient,
) -> None:
    session = await new_session(client)
    url = f"/sessions/{session['id']}/prompt"
    # Over the limit: 6x the largest prompt (JSON escapes), the most images, and some room.
    limit = 6 * 1024 * 1024 + image_body_bytes() + BODY_OVERHEAD_BYTES
    huge = b'{"prompt": "' + b"x" * (limit + 1) + b'"}'
    declared = await client.post(url, content=huge, headers={"content-type": "application/json"})
    assert_problem(declared, 413, "payload_too_large")

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(huge), 1024 * 1024):
            yield huge[start : start + 1024 * 1024]

    streamed = await client.post(
        url, content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(streamed, 413, "payload_too_large")
    assert (await client.get(f"/sessions/{session['id']}/turns")).json()["total"] == 0


# --- input that reaches SQL or argv: query parameters and bodies held to the same rules -------

BAD_LABEL_FILTERS = [
    ("k=a\x00b", "NUL"),
    ("k=a\nb", "line breaks"),
    ("k=a,b", "commas"),
    ("k=" + "v" * 257, "256"),
    ("-k=v", "must match"),
    ("k\x00=v", "must match"),
]


@pytest.mark.parametrize("path", ["/sessions", "/agents"])
async def test_label_filters_follow_the_rules_of_labels(
    client: httpx.AsyncClient, path: str
) -> None:
    for label, says in BAD_LABEL_FILTERS:
        problem = assert_problem(
            await client.get(path, params={"label": label}), 422, "invalid_input"
        )
        assert problem["field"] == "label" and says in problem["detail"], label
    too_many = [("label", f"k{n}=v") for n in range(33)]
    problem = assert_problem(await client.get(path, params=too_many), 422, "invalid_input")
    assert "at most 32" in problem["detail"]
    # Reserved keys may be filtered on (they cannot be set): the session label.
    listed = await client.get(path, params={"label": f"gateway.session={uuid.uuid4()}"})
    assert listed.status_code == 200, listed.text


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/sessions", "title"),
        ("/sessions", "labels"),
        ("/sessions/import", "cwd"),
    ],
)
async def test_lone_surrogates_in_bodies_are_refused(
    client: httpx.AsyncClient, path: str, field: str
) -> None:
    """JSON may escape half a UTF-16 pair; it has no UTF-8 form for SQL or argv (pydantic
    refuses it as no valid string, before any pattern)."""
    value = {"cwd": '"/tmp/a\\ud800"', "labels": '{"k": "a\\udc00"}'}.get(field, '"a\\ud800b"')
    base = {"/sessions/import": '"provider": "claude", "provider_session_id": "s1", '}.get(path, "")
    body = "{" + base + f'"{field}": {value}' + "}"
    response = await client.post(
        path, content=body.encode(), headers={"Content-Type": "application/json"}
    )
    problem = assert_problem(response, 422, "validation_failed")
    assert field in problem["detail"]
