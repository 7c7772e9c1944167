"""Images and text attachments in a prompt: through a live gateway to the fake daemon, which
records what it got (both transports: the CLI's `--image` files, the daemon's `images`)."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import openai

from app.services.prompt_media import MAX_IMAGE_BYTES, MAX_IMAGES
from tests.api.conftest import TEST_ADMIN_KEY, Gateway
from tests.api.test_sessions import assert_problem
from tests.fakes.harness import FakePaseoDaemon
from tests.sse import SseEvent, collect_turn

INSTANT = "emit 3 coalesced agent stream updates"
INSTANT_REPLY = "stress-update-0stress-update-1stress-update-2"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg=="
)
PNG_IN = {"media_type": "image/png", "data": base64.b64encode(PNG).decode()}


async def _transport(client: httpx.AsyncClient) -> str:
    transport: str = (await client.get("/readyz")).json()["transport"]
    return transport


async def _prompt(
    client: httpx.AsyncClient, session_id: str, body: dict[str, Any]
) -> tuple[httpx.Response, list[SseEvent]]:
    async with client.stream("POST", f"/sessions/{session_id}/prompt", json=body) as response:
        if response.status_code != 200:
            await response.aread()
            return response, []
        return response, await collect_turn(response)


def _images_of(daemon: FakePaseoDaemon, agent_id: str) -> list[list[tuple[str, bytes]]]:
    """Each prompt's images as the daemon got them, oldest first."""
    return [
        [(image["mimeType"], base64.b64decode(image["data"])) for image in entry["images"]]
        for entry in daemon.received_media()
        if entry["agentId"] == agent_id
    ]


async def _agent_id(client: httpx.AsyncClient, session_id: str) -> str:
    agent_id: str = (await client.get(f"/sessions/{session_id}")).json()["agent_id"]
    return agent_id


async def _turn_count(client: httpx.AsyncClient, session_id: str) -> int:
    total: int = (await client.get(f"/sessions/{session_id}/turns")).json()["total"]
    return total


async def test_a_png_reaches_the_agent_and_only_its_size_is_stored(
    client: httpx.AsyncClient, fake_daemon: FakePaseoDaemon
) -> None:
    session = (await client.post("/sessions", json={})).json()
    first, events = await _prompt(client, session["id"], {"prompt": INSTANT, "images": [PNG_IN]})
    assert first.status_code == 200, first.text
    assert events[-1].event == "turn.completed", events[-1]
    started = events[0].json()
    assert started["images"] == [{"media_type": "image/png", "bytes": len(PNG)}]
    second, events = await _prompt(
        client, session["id"], {"prompt": INSTANT, "images": [PNG_IN, PNG_IN]}
    )
    assert second.status_code == 200 and events[-1].event == "turn.completed"
    agent_id = await _agent_id(client, session["id"])
    assert _images_of(fake_daemon, agent_id) == [
        [("image/png", PNG)],
        [("image/png", PNG), ("image/png", PNG)],
    ]
    # The stored replay says how many and how large, never the bytes.
    async with client.stream("GET", first.headers["content-location"]) as replay:
        stored = await collect_turn(replay)
    assert PNG_IN["data"] not in json.dumps([event.data for event in stored])
    assert stored[0].json()["images"] == started["images"]


async def test_a_new_session_takes_images_with_its_first_prompt(
    client: httpx.AsyncClient, fake_daemon: FakePaseoDaemon
) -> None:
    response = await client.post("/sessions", json={"prompt": INSTANT, "images": [PNG_IN]})
    assert response.status_code == 201, response.text
    session = response.json()
    async with client.stream(
        "GET", f"/sessions/{session['id']}/turns/{session['turn']['id']}/events"
    ) as stream:
        events = await collect_turn(stream)
    assert events[-1].event == "turn.completed"
    agent_id = await _agent_id(client, session["id"])
    assert _images_of(fake_daemon, agent_id) == [[("image/png", PNG)]]
    without = await client.post("/sessions", json={"images": [PNG_IN]})
    assert_problem(without, 422, "invalid_input")


async def test_images_the_gateway_refuses_store_nothing(client: httpx.AsyncClient) -> None:
    session = (await client.post("/sessions", json={})).json()
    big = base64.b64encode(b"\0" * (MAX_IMAGE_BYTES + 1)).decode()
    cases = [
        ({"media_type": "image/svg+xml", "data": PNG_IN["data"]}, 415, "image_type_unsupported"),
        ({"media_type": "image/png", "data": "not base64!"}, 422, "image_invalid"),
        # Over the image limit yet within the body limit: the answer says which image.
        ({"media_type": "image/png", "data": big}, 413, "image_too_large"),
        ({"media_type": "image/png"}, 422, "validation_failed"),
    ]
    for image, status, code in cases:
        response, _ = await _prompt(client, session["id"], {"prompt": "hi", "images": [image]})
        problem = assert_problem(response, status, code)
        assert "images" in json.dumps(problem)
    many = {"prompt": "hi", "images": [PNG_IN] * (MAX_IMAGES + 1)}
    assert_problem((await _prompt(client, session["id"], many))[0], 413, "too_many_images")
    steer = {"prompt": "hi", "mode": "steer", "images": [PNG_IN]}
    assert_problem((await _prompt(client, session["id"], steer))[0], 422, "media_unsupported")
    assert await _turn_count(client, session["id"]) == 0


async def test_text_attachments_go_over_the_daemon_transport_only(
    client: httpx.AsyncClient, fake_daemon: FakePaseoDaemon
) -> None:
    session = (await client.post("/sessions", json={})).json()
    attachment = {"type": "text", "title": "notes.txt", "text": "line 1\nline 2"}
    body = {"prompt": INSTANT, "attachments": [attachment]}
    response, events = await _prompt(client, session["id"], body)
    if await _transport(client) == "cli":
        problem = assert_problem(response, 422, "media_unsupported")
        assert "daemon transport" in problem["detail"]
        assert await _turn_count(client, session["id"]) == 0
        return
    assert response.status_code == 200 and events[-1].event == "turn.completed"
    assert events[0].json()["attachments"] == [{"title": "notes.txt", "bytes": 13}]
    agent_id = await _agent_id(client, session["id"])
    (received,) = [e for e in fake_daemon.received_media() if e["agentId"] == agent_id]
    assert received["attachments"] == [{**attachment, "mimeType": "text/plain"}]


def test_openai_image_url_parts_take_data_urls_only(
    gateway: Gateway, fake_daemon: FakePaseoDaemon
) -> None:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=TEST_ADMIN_KEY, max_retries=0) as ai:
        data_url = f"data:image/png;base64,{PNG_IN['data']}"
        content: list[Any] = [
            {"type": "text", "text": INSTANT},
            {"type": "image_url", "image_url": {"url": data_url}},
        ]
        raw = ai.chat.completions.with_raw_response.create(
            model="mock/ten-second-stream", messages=[{"role": "user", "content": content}]
        )
        assert raw.parse().choices[0].message.content == INSTANT_REPLY
        session_id = raw.headers["x-paseo-session"]
        with httpx.Client(base_url=gateway.url, timeout=60) as http:
            headers = {"Authorization": f"Bearer {TEST_ADMIN_KEY}"}
            agent_id = http.get(f"/sessions/{session_id}", headers=headers).json()["agent_id"]
        assert _images_of(fake_daemon, agent_id) == [[("image/png", PNG)]]
        content[1] = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
        try:
            ai.chat.completions.create(
                model="mock/ten-second-stream", messages=[{"role": "user", "content": content}]
            )
        except openai.BadRequestError as exc:
            assert exc.status_code == 400 and exc.code == "image_invalid"
            assert "does not fetch" in str(exc)
        else:
            raise AssertionError("an http(s) image URL was accepted")
