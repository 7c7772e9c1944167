"""A turn as a person reads it, in headless Chromium: the answer as Markdown, each tool call
with its command, output or coloured diff, the thinking folded once, the todo list, the cost
of the turn and of the session, and an earlier turn drawn the same way from its items.

Tool details come only on the daemon transport, so this gateway uses it (the fake daemon's
mock streams `## Cycle 1`, a list with inline code, a read, a grep, an edit with a unified
diff and a shell command with its output). Screenshots go to test-artifacts/ (see
tests/ui/test_ui.py: save_screenshot).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.api.conftest import AUTH, TEST_ADMIN_KEY, Gateway
from tests.fakes.harness import FakePaseoDaemon
from tests.ui.conftest import skip_without_a_browser
from tests.ui.test_ui import (
    ANSWER_SOURCE,
    TURN_TIMEOUT_MS,
    api_turns,
    browser_gateway,
    open_session_id,
    pick_model,
    rendered_answer,
    save_screenshot,
    send_prompt,
    wait_for_status,
)

if TYPE_CHECKING:
    from playwright.async_api import Page

TODO_PROMPT = "emit 3 agent stream updates"  # the mock's todo list of three items
# What the mock's cycle does (tests/fakes/fake_paseo_daemon.py, which runs as a script).
SHELL_COMMAND = "node scripts/simulate-stream-burst.mjs"
EDIT_FILE = "packages/app/src/hooks/use-scroll-anchor.ts"
ONE_PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mP8/x8AAusB9Wl4Kj8AAAAASUVORK5CYII="
)


@pytest.fixture(scope="module")
def daemon_gateway(
    fake_daemon: FakePaseoDaemon, agent_cwd: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    skip_without_a_browser()
    log_dir = tmp_path_factory.mktemp("gateway-ui-daemon")
    with browser_gateway(fake_daemon, agent_cwd, log_dir, PASEO_GATEWAY_TRANSPORT="daemon") as gw:
        yield gw


def items_route_answers(gateway: Gateway, session_id: str, turn_id: str) -> bool:
    """Whether this gateway has GET …/turns/{id}/items (the page falls back to the events)."""
    url = f"{gateway.url}/sessions/{session_id}/turns/{turn_id}/items"
    response = httpx.get(url, headers=AUTH, timeout=30)
    if response.status_code == 200:
        return True
    assert response.status_code in (404, 405), response.text
    return False


async def use_key(page: Page, gateway: Gateway) -> None:
    await page.goto(f"{gateway.url}/ui")
    await page.get_by_label("API key").fill(TEST_ADMIN_KEY)
    await page.get_by_role("button", name="Use key").click()


async def test_the_markdown_renderer_builds_safe_nodes(daemon_gateway: Gateway, page: Page) -> None:
    """The renderer's subset, and nothing of the text becomes markup, script or a non-web
    link (run in the page's own origin, under its CSP)."""
    await page.goto(f"{daemon_gateway.url}/ui")
    html: dict[str, str] = await page.evaluate(
        """async () => {
            const { renderMarkdown } = await import("./ui/markdown.js");
            const html = (text) => {
                const box = document.createElement("div");
                box.append(renderMarkdown(text));
                return box.innerHTML;
            };
            return {
                blocks: html("## Plan\\n\\nSome **bold**, *it*, `x < y` and ~~no~~.\\n\\n"
                    + "- one\\n- two\\n  1. nested\\n\\n> quoted *words*\\n\\n"
                    + "```py\\nprint('<b>')\\n```"),
                links: html("[web](https://example.com/a?b=1) [js](javascript:alert(1)) "
                    + "<https://example.org> [rel](/etc/passwd)"),
                markup: html("<img src=x onerror=\\"window.pwned=1\\"> <script>x()</script>"),
                snake: html("a_snake_case_name and 2 * 3 * 4"),
                streaming: html("```sh\\nls -la"),
            };
        }"""
    )
    assert html["blocks"] == (
        '<h5 class="md-h2">Plan</h5><p>Some <strong>bold</strong>, <em>it</em>, '
        "<code>x &lt; y</code> and <del>no</del>.</p>"
        "<ul><li>one</li><li>two<ol><li>nested</li></ol></li></ul>"
        "<blockquote><p>quoted <em>words</em></p></blockquote>"
        '<pre class="md-code" data-language="py"><code data-language="py">'
        "print('&lt;b&gt;')</code></pre>"
    )
    attrs = 'rel="noopener noreferrer nofollow" target="_blank"'
    assert html["links"] == (
        f'<p><a href="https://example.com/a?b=1" {attrs}>web</a> '
        '<span class="md-nolink">js</span> '
        f'<a href="https://example.org/" {attrs}>https://example.org</a> '
        '<span class="md-nolink">rel</span></p>'
    )
    assert html["markup"] == (
        '<p>&lt;img src=x onerror="window.pwned=1"&gt; &lt;script&gt;x()&lt;/script&gt;</p>'
    )
    assert html["snake"] == "<p>a_snake_case_name and 2 * 3 * 4</p>"
    assert html["streaming"] == (
        '<pre class="md-code" data-language="sh"><code data-language="sh">ls -la</code></pre>'
    )
    assert await page.evaluate("window.pwned") is None


async def test_a_turn_renders_markdown_tool_calls_diffs_and_cost(
    daemon_gateway: Gateway, page: Page, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    await use_key(page, daemon_gateway)

    # The pickers: providers from /providers, their models from /v1/models, modes by id with
    # their labels shown.
    await pick_model(page, "claude", "claude-sonnet-4-5")
    plan = page.locator("#new-mode option[value='plan']")
    await expect(plan).to_have_text("Plan Mode")
    await pick_model(page, "mock", "ten-second-stream")
    await expect(page.locator("#new-model option")).to_have_count(5)  # default + 4 mock models
    await expect(page.locator("#new-mode option[value='load-test']")).to_have_text("Load Test")
    await page.get_by_label("Title").fill("Full turn")
    await page.get_by_role("button", name="Create session").click()
    await expect(page.locator("#session-meta")).to_contain_text("mock / ten-second-stream")
    session_id = open_session_id(page)

    # Images: a refused type says why; a PNG shows a preview that can be removed.
    attach = page.locator("#image-input")
    await attach.set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}]
    )
    await expect(page.locator("#image-error")).to_contain_text(
        "notes.txt is text/plain: only PNG, JPEG, GIF and WebP images can be sent."
    )
    png = {"name": "dot.png", "mimeType": "image/png", "buffer": ONE_PIXEL_PNG}
    await attach.set_input_files(files=[png])
    await expect(page.locator("#image-error")).to_be_hidden()
    await expect(page.get_by_role("img", name="Attached: dot.png")).to_be_visible()
    await page.get_by_role("button", name="Remove dot.png").click()
    await expect(page.locator("#image-list li")).to_have_count(0)
    await attach.set_input_files(files=[png])
    await expect(page.locator("#image-list li")).to_have_count(1)

    # The turn: a ten-second stream at the suite's time scale.
    await send_prompt(page, "walk me through the scroll anchor")
    await wait_for_status(page, "completed")
    await expect(page.locator("#image-list li")).to_have_count(0)
    [turn] = api_turns(daemon_gateway, session_id)
    assert turn["status"] == "completed"
    live = page.locator("#live-transcript")
    assert await rendered_answer(page) == turn["final_text"]
    await expect(live.locator(".msg-user .image-chips")).to_contain_text("image/png")

    await check_turn_drawn(page, live)
    # The cost of the turn (the mock's is 0) and of the session so far.
    await expect(live.locator(".turn-usage")).to_contain_text("$0.00")
    await expect(page.locator("#session-usage")).to_contain_text("1 turn")
    await expect(page.locator("#session-usage")).to_contain_text("$0.00")
    await save_screenshot(page, "ui-turn.png", tmp_path)

    # A second turn with a todo list; the first becomes an earlier turn, drawn from its items
    # (or, on a gateway without the items route, from its events) the same way.
    await send_prompt(page, TODO_PROMPT)
    await wait_for_status(page, "completed")
    todo = live.locator(".todo")
    await expect(todo).to_have_count(1)
    await expect(todo).to_contain_text("stress-update-2")
    await expect(todo.locator("li")).to_have_count(1)  # the latest list only
    await expect(page.locator("#session-usage")).to_contain_text("2 turns")

    earlier = page.locator(f'#turn-list details[data-turn-id="{turn["id"]}"]')
    await expect(earlier.locator(".turn-cost")).to_contain_text("$0.00")
    requests.clear()
    await earlier.locator("summary").click()
    drawn = earlier.locator(".transcript")
    await expect(drawn).to_have_attribute("data-state", "shown", timeout=TURN_TIMEOUT_MS)
    assert await drawn.evaluate(ANSWER_SOURCE) == turn["final_text"]
    await expect(drawn.locator(".msg-user")).to_contain_text("walk me through the scroll anchor")
    await check_turn_drawn(page, drawn)
    read_items = any(url.endswith(f"/turns/{turn['id']}/items") for url in requests)
    replayed = any(f"/turns/{turn['id']}/events" in url for url in requests)
    if items_route_answers(daemon_gateway, session_id, turn["id"]):
        assert read_items and not replayed, requests
    else:
        assert read_items and replayed, requests
    await earlier.scroll_into_view_if_needed()
    await save_screenshot(page, "ui-earlier-turn.png", tmp_path)
    assert not errors, errors


async def check_turn_drawn(page: Page, transcript: Any) -> None:
    """What the mock's turn must look like, live or read back."""
    from playwright.async_api import expect

    # Markdown: `## Cycle 1` a heading, the list of findings with inline code.
    await expect(transcript.locator(".md .md-h2").first).to_have_text("Cycle 1")
    code = transcript.locator(".md li code", has_text="onContentSizeChange")
    await expect(code.first).to_be_visible()
    assert await transcript.locator(".md li").count() >= 4
    assert "## Cycle" not in (await transcript.locator(".md").first.text_content() or "")
    # The thinking, folded, once.
    thinking = transcript.locator("details.thinking")
    await expect(thinking).to_have_count(1)  # however many cycles the stream had
    assert not await thinking.evaluate("details => details.open")
    # The shell call: its command and output, folded until opened.
    shell = transcript.locator("details.tool[data-kind='shell']").first
    await expect(shell.locator("summary")).to_contain_text("completed")
    await expect(shell.locator("summary")).to_contain_text(SHELL_COMMAND)
    await shell.locator("summary").click()
    await expect(shell.locator(".tool-command")).to_have_text(f"$ {SHELL_COMMAND}")
    await expect(shell.locator(".tool-output")).to_contain_text("[burst] drag-start")
    await expect(shell.locator(".tool-body")).to_contain_text("Exit code 0")
    # The edit: its file and a coloured diff.
    edit = transcript.locator("details.tool[data-kind='edit']").first
    await edit.locator("summary").click()
    await expect(edit.locator(".tool-body")).to_contain_text(EDIT_FILE)
    added = edit.locator(".diff .diff-add", has_text="NEAR_BOTTOM_PX = 160")
    removed = edit.locator(".diff .diff-del", has_text="NEAR_BOTTOM_PX = 80")
    await expect(added).to_have_count(1)
    await expect(removed).to_have_count(1)
    colours = await page.evaluate(
        "([a, d]) => [a, d].map(e => getComputedStyle(e).backgroundColor)",
        [await added.element_handle(), await removed.element_handle()],
    )
    assert len(set(colours)) == 2 and "rgba(0, 0, 0, 0)" not in colours, colours
    # The read and the search show their file and query.
    read = transcript.locator("details.tool[data-kind='read'] summary").first
    await expect(read).to_contain_text("conversation-list.tsx")
    search = transcript.locator("details.tool[data-kind='search'] summary").first
    await expect(search).to_contain_text("scrollToEnd")
