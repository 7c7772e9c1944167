"""Traces: off unless the OTEL_* variables ask; when on, a turn through the gateway leaves the
request's server span (with its request id), SQL statements, the turn's span and its Paseo
calls; `OTEL_TRACES_EXPORTER=console` prints them (README's "Traces").

The in-process tests install an SDK provider with an in-memory exporter, as a program
embedding the gateway would, and the gateway uses it; the README example runs a real
`paseo-gateway serve` with the variables set.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.util._once import Once

from app.api.middleware import REQUEST_ID_ATTRIBUTE
from app.main import create_app
from app.settings import Settings
from app.telemetry import TelemetryConfigError, Tracing, exporter_names, installed_provider
from tests.api.conftest import (
    AUTH,
    STARTUP_TIMEOUT_SECONDS,
    _free_port,
    empty_database,
    gateway_env,
    start_gateway,
    stop_gateway,
)
from tests.api.test_prompt import INSTANT, INSTANT_REPLY, new_session, stream_prompt
from tests.fakes.harness import FAKE_PASEO_BIN, FakePaseoDaemon

# Generous: a loaded 2-core machine.
CONDITION_SECONDS = 60.0
SQLALCHEMY_SCOPE = "opentelemetry.instrumentation.sqlalchemy"


@pytest.fixture
def no_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """None of the OTEL_* variables the machine running the tests may have."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


def _forget_tracer_provider() -> None:
    """The API lets a process set its provider once; tests take it back as the API's own test
    helpers do (opentelemetry-test-utils' `reset_trace_globals`)."""
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None


@pytest.fixture
def spans(no_otel_variables: None) -> Iterator[InMemorySpanExporter]:
    """An SDK provider keeping every ended span in memory, installed for this test only."""
    assert installed_provider() is None
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        provider.shutdown()
        _forget_tracer_provider()


async def _ended(
    exporter: InMemorySpanExporter, condition: Callable[[ReadableSpan], bool]
) -> ReadableSpan:
    """The first ended span that meets `condition` (a turn's span ends after its stream)."""
    async with asyncio.timeout(CONDITION_SECONDS):
        while True:
            for span in exporter.get_finished_spans():
                if condition(span):
                    return span
            await asyncio.sleep(0.02)


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway app under uvicorn in this process (so the test's provider is its own)."""
    app = create_app(settings)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(STARTUP_TIMEOUT_SECONDS):
            while not server.started:
                assert not task.done(), "the gateway stopped at start"
                await asyncio.sleep(0.05)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            yield http
    finally:
        server.should_exit = True
        await task


def _settings(database_url: str, daemon: FakePaseoDaemon, cwd: Path) -> Settings:
    return Settings(
        database_url=database_url,
        auth_disabled=True,
        default_provider="mock",
        default_model="ten-second-stream",
        default_cwd=cwd,
        paseo_bin=str(FAKE_PASEO_BIN),
        paseo_host=daemon.host,
        paseo_home=daemon.home,
        transport="cli",
    )


async def test_a_turn_leaves_its_request_its_sql_its_span_and_its_paseo_calls(
    spans: InMemorySpanExporter, fake_daemon: FakePaseoDaemon, agent_cwd: Path, tmp_path: Path
) -> None:
    with empty_database("sqlite", tmp_path) as url:
        async with serving(_settings(url, fake_daemon, agent_cwd)) as client:
            session = await new_session(client)
            response, events = await stream_prompt(client, session["id"], INSTANT)
            assert events[-1].json()["final_text"] == INSTANT_REPLY
            turn_id = response.headers["x-turn-id"]
            request_id = response.headers["x-request-id"]

            server = await _ended(
                spans,
                lambda span: (
                    span.kind == SpanKind.SERVER
                    and (span.attributes or {}).get(REQUEST_ID_ATTRIBUTE) == request_id
                ),
            )
            turn = await _ended(
                spans,
                lambda span: (
                    span.name == "paseo_gateway.turn"
                    and (span.attributes or {}).get("paseo_gateway.turn_id") == turn_id
                ),
            )
    assert server.name == "POST /sessions/{session_id}/prompt"
    assert turn.attributes is not None and server.context is not None
    assert turn.attributes["paseo_gateway.session_id"] == session["id"]
    assert turn.attributes["paseo_gateway.daemon"] == "default"
    assert turn.attributes["paseo_gateway.turn.status"] == "completed"
    assert turn.context is not None and turn.context.trace_id == server.context.trace_id

    finished = spans.get_finished_spans()
    started = [span for span in finished if span.name == "paseo.start_agent_turn"]
    assert len(started) == 1 and started[0].kind == SpanKind.CLIENT
    assert started[0].parent is not None
    assert started[0].parent.span_id == turn.context.span_id
    assert (started[0].attributes or {}).get("paseo_gateway.turn_id") == turn_id
    statements = [
        span
        for span in finished
        if span.instrumentation_scope is not None
        and span.instrumentation_scope.name == SQLALCHEMY_SCOPE
    ]
    assert statements, "no SQLAlchemy span"
    assert any(
        span.parent is not None and span.parent.span_id == turn.context.span_id
        for span in statements
    ), "the turn's statements are not its children"


async def test_the_webhooks_client_is_traced(spans: InMemorySpanExporter) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(204)

    tracing = Tracing.from_environ({})
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        tracing.instrument_http_client(client)
        await client.post("https://receiver.example/hook", content=b"{}")
    [sent] = spans.get_finished_spans()
    assert sent.kind == SpanKind.CLIENT
    assert sent.instrumentation_scope is not None
    assert sent.instrumentation_scope.name == "opentelemetry.instrumentation.httpx"


async def test_with_no_otel_variable_nothing_is_set_up(
    no_otel_variables: None, tmp_path: Path
) -> None:
    tracing = Tracing.from_environ()
    assert tracing.provider is None
    app = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"))
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
    assert installed_provider() is None
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


@pytest.mark.parametrize(
    ("environ", "exporters"),
    [
        ({}, []),
        ({"OTEL_SERVICE_NAME": "gw"}, []),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "console, otlp"}, ["console", "otlp"]),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, []),
    ],
)
def test_the_variables_decide_the_exporters(environ: dict[str, str], exporters: list[str]) -> None:
    assert exporter_names(environ) == exporters


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_TRACES_EXPORTER": "jaeger"},
        {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
    ],
)
def test_what_cannot_be_done_is_refused_at_start(environ: dict[str, str]) -> None:
    with pytest.raises(TelemetryConfigError):
        exporter_names(environ)


def test_sdk_disabled_wins(no_otel_variables: None) -> None:
    environ = {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}
    assert Tracing.from_environ(environ).provider is None
    assert installed_provider() is None


def test_the_readme_console_example_prints_spans(
    fake_daemon: FakePaseoDaemon, agent_cwd: Path, tmp_path: Path
) -> None:
    """`OTEL_TRACES_EXPORTER=console` on `paseo-gateway serve`: the spans, as JSON on stdout,
    reach the log by the time the gateway has stopped (flushed as the app ends)."""
    with empty_database("sqlite", tmp_path) as url:
        env = gateway_env(url, fake_daemon, agent_cwd)
        env = {name: value for name, value in env.items() if not name.startswith("OTEL_")}
        env.update(OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="paseo-gateway")
        gateway = start_gateway(tmp_path / "logs", env)
        try:
            answer = httpx.get(
                f"{gateway.url}/sessions",
                headers={**AUTH, "X-Request-ID": "readme-traces-1"},
                timeout=60,
            )
            assert answer.status_code == 200, answer.text
        finally:
            stop_gateway(gateway)
        log = gateway.log()
    printed = _json_objects(log)
    [request] = [span for span in printed if span["name"] == "GET /sessions"]
    assert request["attributes"][REQUEST_ID_ATTRIBUTE] == "readme-traces-1"
    assert request["resource"]["attributes"]["service.name"] == "paseo-gateway"
    assert not [span for span in printed if "healthz" in span["name"]]


def _json_objects(log: str) -> list[dict[str, Any]]:
    """The console exporter's spans: indented JSON objects among the log's lines."""
    decoder = json.JSONDecoder()
    found, at = [], 0
    while (start := log.find("{\n", at)) >= 0:
        try:
            value, at = decoder.raw_decode(log, start)
        except json.JSONDecodeError:
            at = start + 1
            continue
        if isinstance(value, dict) and "context" in value:
            found.append(value)
    return found
