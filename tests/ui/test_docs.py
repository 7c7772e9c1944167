"""/docs in a real headless Chromium: Swagger UI from the gateway itself, under its CSP.

A real gateway (uvicorn child process, SQLite), once with public docs and once with
PASEO_GATEWAY_PUBLIC_DOCS=false (the page asks for a key). The page must list the operations,
load nothing from any other host (no CDN), and cause no Content-Security-Policy violation.
Launches the system Chromium like tests/ui/test_ui.py, with the same skip rules.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from tests.api.conftest import (
    TEST_ADMIN_KEY,
    Gateway,
    empty_database,
    gateway_env,
    start_gateway,
    stop_gateway,
)
from tests.fakes.harness import FakePaseoDaemon
from tests.ui.conftest import browser_missing, launched_chromium

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

TIMEOUT_MS = 30_000
# Collected before any page script runs (an init script is not subject to the page's CSP).
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


@pytest.fixture(scope="module", params=["public", "protected"])
def docs_gateway(
    request: pytest.FixtureRequest,
    fake_daemon: FakePaseoDaemon,
    agent_cwd: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, Gateway]]:
    missing = browser_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the browser test cannot run in CI: {missing}")
        pytest.skip(missing)
    log_dir = tmp_path_factory.mktemp(f"gateway-docs-{request.param}")
    public = "true" if request.param == "public" else "false"
    with empty_database("sqlite", log_dir) as database_url:
        env = gateway_env(database_url, fake_daemon, agent_cwd, PASEO_GATEWAY_PUBLIC_DOCS=public)
        gateway = start_gateway(log_dir, env)
        try:
            yield request.param, gateway
        finally:
            stop_gateway(gateway)


@pytest.fixture(scope="module")
async def docs_browser(docs_gateway: tuple[str, Gateway]) -> AsyncIterator[Browser]:
    async with launched_chromium() as chromium:
        yield chromium


@pytest.fixture
async def docs_page(docs_browser: Browser) -> AsyncIterator[Page]:
    context = await docs_browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = await context.new_page()
        await page.add_init_script(CSP_LISTENER)
        yield page
    finally:
        await context.close()


def operation(method: str, path: str) -> str:
    return f'.opblock-{method}:has(.opblock-summary-path[data-path="{path}"])'


async def test_docs_are_served_by_the_gateway_alone_under_its_csp(
    docs_gateway: tuple[str, Gateway], docs_page: Page
) -> None:
    from playwright.async_api import expect

    variant, gateway = docs_gateway
    page = docs_page
    origin = urlsplit(gateway.url)
    requested: list[str] = []
    console: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: errors.append(str(error)))

    response = await page.goto(f"{gateway.url}/docs")
    assert response is not None and response.ok
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp

    if variant == "protected":
        # /openapi.json needs a key: the page asks for one, refuses a wrong one.
        await expect(page.get_by_label("API key")).to_be_visible(timeout=TIMEOUT_MS)
        await page.get_by_label("API key").fill("pgw_not-a-key")
        await page.get_by_role("button", name="Show the docs").click()
        await expect(page.get_by_role("alert")).to_contain_text("refused")
        await page.get_by_label("API key").fill(TEST_ADMIN_KEY)
        await page.get_by_role("button", name="Show the docs").click()

    # Swagger UI renders the API: its title and the operations.
    await expect(page.locator(".info .title")).to_contain_text("Paseo Gateway", timeout=TIMEOUT_MS)
    create = page.locator(operation("post", "/sessions"))
    await expect(create).to_be_visible()
    await expect(create.locator(".opblock-summary-method")).to_have_text("POST")
    await expect(page.locator(operation("get", "/sessions/{session_id}"))).to_be_visible()

    # "Try it out" sends the key the page was given (or none, and is refused).
    listing = page.locator(operation("get", "/sessions"))
    await listing.locator(".opblock-summary").first.click()
    await listing.get_by_role("button", name="Try it out").click()
    await listing.get_by_role("button", name="Execute").click()
    status = listing.locator(".live-responses-table .response .response-col_status").first
    await expect(status).to_have_text("200" if variant == "protected" else "401")

    assert requested, "the page made no requests"
    elsewhere = [
        url
        for url in requested
        if urlsplit(url).scheme not in ("data", "blob")
        and (urlsplit(url).scheme, urlsplit(url).netloc) != (origin.scheme, origin.netloc)
    ]
    assert not elsewhere, f"requests to another host than the gateway: {elsewhere}"
    assert f"{gateway.url}/docs/swagger-ui-bundle.js" in requested
    assert f"{gateway.url}/docs/swagger-ui.css" in requested
    violations = await page.evaluate("window.__cspViolations")
    assert violations == [], violations
    csp_messages = [line for line in console if "Content Security Policy" in line]
    assert not csp_messages, csp_messages
    assert not errors, errors
