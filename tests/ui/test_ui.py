"""The browser page in a real headless Chromium (Debian's `chromium`, driven by Playwright).

A real gateway (uvicorn child process, SQLite) drives the fake paseo CLI and daemon. The test
types the key, creates sessions, streams prompts, reloads mid-turn, cancels, opens an earlier
turn, and saves a screenshot (in pytest's tmp dir and in test-artifacts/, see `save_screenshot`).
tests/ui/test_transcript.py renders a full turn (Markdown, tool calls, diffs, cost) on the
daemon transport.

Without Chromium or Python Playwright the test skips and says why; with CI set, it fails.
Playwright's own browser download (`playwright install`) is never used: it launches the
system Chromium (PASEO_GATEWAY_TEST_CHROMIUM, default /usr/bin/chromium).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.api.conftest import (
    AUTH,
    TEST_ADMIN_KEY,
    Gateway,
    empty_database,
    gateway_env,
    start_gateway,
    stop_gateway,
)
from tests.fakes.harness import FakePaseoDaemon
from tests.ui.conftest import skip_without_a_browser

if TYPE_CHECKING:
    from playwright.async_api import Page

ROOT = Path(__file__).resolve().parents[2]
# Screenshots are kept here (ignored by git, next to the checkout, so a CI job can keep the
# folder); PASEO_GATEWAY_TEST_ARTIFACTS names another.
ARTIFACTS = Path(os.environ.get("PASEO_GATEWAY_TEST_ARTIFACTS", ROOT / "test-artifacts"))
INSTANT = "emit 3 coalesced agent stream updates"
INSTANT_REPLY = "stress-update-0stress-update-1stress-update-2"
# Fake-daemon model streamed for about 6 s at the suite's time scale (ten-second-stream: 1 s).
LONG_MODEL = "one-minute-stream"
TURN_TIMEOUT_MS = 60_000
RUN_STORE = "paseo-gateway.running-turn"  # where the page keeps this tab's running turn


@contextmanager
def browser_gateway(
    fake_daemon: FakePaseoDaemon, agent_cwd: Path, log_dir: Path, **overrides: str
) -> Iterator[Gateway]:
    """A gateway on SQLite for the page, stopped at the end."""
    with empty_database("sqlite", log_dir) as database_url:
        env = gateway_env(database_url, fake_daemon, agent_cwd, **overrides)
        gateway = start_gateway(log_dir, env)
        try:
            yield gateway
        finally:
            stop_gateway(gateway)


@pytest.fixture(scope="module")
def ui_gateway(
    fake_daemon: FakePaseoDaemon, agent_cwd: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    skip_without_a_browser()
    with browser_gateway(fake_daemon, agent_cwd, tmp_path_factory.mktemp("gateway-ui")) as gw:
        yield gw


def api_turns(gateway: Gateway, session_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{gateway.url}/sessions/{session_id}/turns", headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def open_session_id(page: Page) -> str:
    fragment = parse_qs(urlsplit(page.url).fragment)
    return fragment["session"][0]


# The answer's Markdown as the page holds it (each drawn part keeps its source).
ANSWER_SOURCE = (
    "root => [...root.querySelectorAll('.answer-part')].map(e => e.dataset.source).join('')"
)


async def rendered_answer(page: Page) -> str:
    source: str = await page.locator("#live-transcript").evaluate(ANSWER_SOURCE)
    return source


async def save_screenshot(page: Page, name: str, tmp_path: Path) -> Path:
    """A full-page screenshot in pytest's tmp dir, copied to ARTIFACTS (the path printed)."""
    shot = tmp_path / name
    await page.screenshot(path=str(shot), full_page=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    kept = ARTIFACTS / name
    shutil.copyfile(shot, kept)
    print(f"screenshot: {kept}")
    return kept


async def send_prompt(page: Page, prompt: str) -> None:
    await page.get_by_label("Prompt", exact=True).fill(prompt)
    await page.get_by_role("button", name="Send").click()


async def wait_for_status(page: Page, state: str) -> None:
    from playwright.async_api import expect

    await expect(page.locator("#live-status")).to_have_attribute(
        "data-state", state, timeout=TURN_TIMEOUT_MS
    )


async def wait_for_text(page: Page, at_least: int) -> None:
    await page.wait_for_function(
        f"n => ({ANSWER_SOURCE})(document.querySelector('#live-transcript')).length >= n",
        arg=at_least,
        timeout=TURN_TIMEOUT_MS,
    )


async def pick_model(page: Page, provider: str, model: str) -> None:
    """Choose a provider and one of its models in the create form's pickers."""
    options = page.locator("#create-options")
    if not await options.evaluate("details => details.open"):
        await options.locator("summary").click()
    await page.get_by_label("Provider", exact=True).select_option(provider)
    await page.get_by_label("Model", exact=True).select_option(model)


async def create_session(page: Page, title: str, model: str | None = None) -> str:
    from playwright.async_api import expect

    if model:
        await pick_model(page, "mock", model)
    await page.get_by_label("Title").fill(title)
    await page.get_by_role("button", name="Create session").click()
    await expect(page.locator("#session-title")).to_have_text(title)
    if model:
        await expect(page.locator("#session-meta")).to_contain_text(f"mock / {model}")
    return open_session_id(page)


async def test_browser_page_streams_resumes_cancels_and_shows_turns(
    ui_gateway: Gateway, page: Page, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    alert = page.get_by_role("alert")

    # `/` leads to the page, which loads without a key and asks for one, asking the API
    # nothing before it has a key to ask with.
    api_calls: list[str] = []
    page.on(
        "request",
        lambda request: api_calls.append(request.url) if "/sessions" in request.url else None,
    )
    response = await page.goto(f"{ui_gateway.url}/")
    assert response is not None and response.ok
    assert urlsplit(page.url).path == "/ui"
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    await expect(page.locator("#no-session")).to_contain_text("Paste an API key")
    assert api_calls == []

    # A wrong key is refused; the admin key lists the (no) sessions.
    await page.get_by_label("API key").fill("pgw_not-a-key")
    await page.get_by_role("button", name="Use key").click()
    await expect(alert).to_contain_text("refused")
    await page.get_by_label("API key").fill(TEST_ADMIN_KEY)
    await page.get_by_role("button", name="Use key").click()
    await expect(alert).to_be_hidden()
    await expect(page.get_by_text("No sessions yet.")).to_be_visible()

    # A session whose title looks like HTML shows it as text.
    title = '<img src=x onerror="window.pwned = 1"> demo & <b>co</b>'
    first_id = await create_session(page, title)
    await expect(page.locator(f'[data-session-id="{first_id}"] .session-name')).to_have_text(title)
    assert await page.locator("#session-list img, #session-list b, main img").count() == 0

    # The session's model is shown, its gateway default too.
    await expect(page.locator("#session-meta")).to_contain_text("mock / ten-second-stream")
    await expect(page.locator("#session-meta")).not_to_contain_text(" on default")
    # A prompt streams in (ten-second-stream: deltas over about a second) and ends completed.
    await send_prompt(page, "write a haiku")
    await wait_for_text(page, 1)
    await wait_for_status(page, "completed")
    [turn] = api_turns(ui_gateway, first_id)
    assert turn["status"] == "completed" and turn["final_text"]
    assert await rendered_answer(page) == turn["final_text"]
    # The CLI transport knows a tool call's name and status only: the page says so.
    await expect(page.locator("#live-transcript details.tool").first).to_contain_text("completed")
    await expect(page.locator("#live-status")).to_contain_text("completed")

    # A long turn (about 6 s): reload in the middle; the page resumes after the last event.
    second_id = await create_session(page, "Long turn", model=LONG_MODEL)
    await send_prompt(page, "walk me through the scroll anchor")
    await wait_for_text(page, 400)
    assert await page.locator("#live-status").get_attribute("data-state") == "running"
    # While it runs: how long it has taken, and a session that is not "pending".
    await expect(page.locator("#live-status")).to_contain_text(re.compile(r"Running… \d+ s"))
    await expect(page.locator("#session-meta")).not_to_contain_text("pending")
    # The tab keeps where the turn is as it goes (not only when the page goes away).
    await page.wait_for_function(
        f"JSON.parse(sessionStorage.getItem({RUN_STORE!r})).lastEventId > 0"
    )
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.reload()
    await expect(page.locator("#session-title")).to_have_text("Long turn")
    await expect(page.locator("#live-status")).to_contain_text("resumed after a reload")
    await wait_for_status(page, "completed")
    [long_turn] = api_turns(ui_gateway, second_id)
    assert long_turn["status"] == "completed"
    assert await rendered_answer(page) == long_turn["final_text"]
    resumes = [parse_qs(urlsplit(url).query) for url in requested if "/events?" in url]
    assert resumes, f"no events request after the reload: {requested}"
    assert int(resumes[0]["after"][0]) > 0 and resumes[0]["token"][0]

    # Cancel a running turn.
    await send_prompt(page, "and once more, slowly")
    await wait_for_text(page, 100)
    await page.get_by_role("button", name="Cancel turn").click()
    await wait_for_status(page, "cancelled")
    assert [t["status"] for t in api_turns(ui_gateway, second_id)] == ["completed", "cancelled"]

    # An instant turn, then open the first (earlier) turn of this session.
    await send_prompt(page, INSTANT)
    await wait_for_status(page, "completed")
    assert await rendered_answer(page) == INSTANT_REPLY
    earlier = page.locator(f'#turn-list details[data-turn-id="{long_turn["id"]}"]')
    await expect(page.locator("#turn-list > li")).to_have_count(2)
    await earlier.locator("summary").click()
    await expect(earlier.locator(".transcript")).to_have_attribute("data-state", "shown")
    await expect(earlier.locator(".answer-part").first).to_be_visible()
    assert await earlier.locator(".transcript").evaluate(ANSWER_SOURCE) == long_turn["final_text"]

    assert await page.evaluate("window.pwned") is None
    assert not errors, errors
    await save_screenshot(page, "ui.png", tmp_path)


async def test_browser_page_answers_a_permission_request(ui_gateway: Gateway, page: Page) -> None:
    """The agent asks (the mock's plan approval): the page shows the request with Allow and
    Deny; Allow answers it, and the turn goes on to its end."""
    from playwright.async_api import expect

    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{ui_gateway.url}/ui")
    await page.get_by_label("API key").fill(TEST_ADMIN_KEY)
    await page.get_by_role("button", name="Use key").click()
    session_id = await create_session(page, "Plan first")

    await send_prompt(page, "emit synthetic plan approval")
    asked = page.locator("#live-permission")
    await expect(asked).to_be_visible(timeout=TURN_TIMEOUT_MS)
    await expect(asked).to_contain_text("Review the proposed plan")
    await wait_for_status(page, "waiting_permission")
    await expect(page.locator("#live-status")).to_contain_text("Waiting for your answer")
    await asked.get_by_role("button", name="Allow").click()

    await wait_for_status(page, "completed")
    await expect(asked).to_be_hidden()
    await expect(page.locator("#live-transcript .permission-resolution")).to_contain_text(
        "Allowed by"
    )
    [turn] = api_turns(ui_gateway, session_id)
    assert turn["status"] == "completed"

    # The sidebar's usage, refreshed, says what /usage says for today (every turn so far).
    await page.get_by_role("button", name="Refresh usage").click()
    async with httpx.AsyncClient(base_url=ui_gateway.url, headers=AUTH, timeout=30) as api:
        rows = (await api.get("/usage", params={"group_by": "key"})).json()
    turns = sum(row["turns"] for row in rows["rows"])
    output = sum(row["output_tokens"] for row in rows["rows"])
    assert turns >= 1
    await expect(page.locator('[data-usage="This month"]')).to_contain_text(
        f"{turns} turn{'' if turns == 1 else 's'} · "
    )
    await expect(page.locator('[data-usage="This month"]')).to_contain_text(f"/ {output} out")
    assert not errors, errors


async def test_browser_page_lists_the_key_s_webhooks_and_their_last_deliveries(
    fake_daemon: FakePaseoDaemon, agent_cwd: Path, tmp_path: Path, page: Page
) -> None:
    """A webhook made over the API shows in the sidebar with its events; once a session's
    `session.created` has reached the receiver, a refresh shows that delivery. A key without
    the `webhooks` scope is told so, not alerted."""
    from playwright.async_api import expect

    from tests.api.test_webhooks import WEBHOOK_ENV
    from tests.webhook_receiver import Receiver

    skip_without_a_browser()
    receiver = Receiver().start()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        with browser_gateway(fake_daemon, agent_cwd, tmp_path, **WEBHOOK_ENV) as gateway:
            async with httpx.AsyncClient(base_url=gateway.url, headers=AUTH, timeout=30) as api:
                made = await api.post(
                    "/webhooks", json={"url": receiver.url, "events": ["session.created"]}
                )
                assert made.status_code == 201, made.text
                hook = made.json()
                await page.goto(f"{gateway.url}/ui")
                await page.get_by_label("API key").fill(TEST_ADMIN_KEY)
                await page.get_by_role("button", name="Use key").click()
                listed = page.locator(f'[data-webhook-id="{hook["id"]}"]')
                await expect(listed).to_contain_text(receiver.url)
                await expect(listed).to_contain_text("on · session.created")
                await expect(listed).to_contain_text("No deliveries yet.")

                await create_session(page, "Announced")
                await asyncio.to_thread(receiver.wait_for, lambda got: len(got) >= 1)
                deliveries = f"/webhooks/{hook['id']}/deliveries"
                deadline = time.monotonic() + TURN_TIMEOUT_MS / 1000
                while time.monotonic() < deadline:  # recorded just after the receiver answers
                    items = (await api.get(deliveries)).json()["items"]
                    if items and items[0]["status"] == "delivered":
                        break
                    await asyncio.sleep(0.05)
                await page.get_by_role("button", name="Refresh webhooks").click()
                await expect(listed).to_contain_text(
                    "session.created: delivered, 1 attempt, HTTP 200"
                )

                made_key = await api.post("/keys", json={"name": "reader", "scopes": ["prompt"]})
                await page.get_by_label("API key").fill(made_key.json()["secret"])
                await page.get_by_role("button", name="Use key").click()
                await expect(page.locator("#webhooks-note")).to_contain_text("lacks the webhooks")
                await expect(page.locator("#alert")).to_be_hidden()
                assert not errors, errors
    finally:
        receiver.stop()
