"""OpenTelemetry traces, off unless the standard `OTEL_*` variables ask for them.

The FastAPI app, the SQLAlchemy engine and the webhooks' httpx client are traced by the
maintained instrumentation packages; the gateway's own spans (a turn, a Paseo call) come from
`trace.get_tracer(__name__)` where they happen, and are no-ops while nothing is set up. The
tracer provider is process-wide and can be set only once, so it is made once per process and
every app made later (tests make many) reuses it; each app, engine and client is instrumented
on its own. A provider something else installed first (a test, an embedding program) is used
as it is.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry import trace

if TYPE_CHECKING:
    import httpx
    from fastapi import FastAPI
    from opentelemetry.sdk.trace.export import SpanExporter
    from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "paseo-gateway"
# At the end of an app's lifespan, queued spans get this long to leave (the export's own
# timeout, OTEL_EXPORTER_OTLP_TIMEOUT, still bounds each attempt).
FLUSH_TIMEOUT_MILLIS = 5_000
# Probes every few seconds would bury the traces worth reading; the standard variables
# (OTEL_PYTHON_FASTAPI_EXCLUDED_URLS, OTEL_PYTHON_EXCLUDED_URLS) replace this.
DEFAULT_EXCLUDED_URLS = "/healthz,/readyz"
_EXCLUDED_URLS_VARIABLES = ("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS")
EXPORTERS = ("otlp", "console", "none")
# The one OTLP exporter installed (opentelemetry-exporter-otlp-proto-http).
OTLP_PROTOCOL = "http/protobuf"


class TelemetryConfigError(ValueError):
    """An OTEL_* variable asks for what this gateway cannot do: refused at start, not ignored."""


def exporter_names(environ: Mapping[str, str]) -> list[str]:
    """The span exporters `environ` asks for; none means tracing stays off.

    `OTEL_TRACES_EXPORTER` names them (`none`: none); without it an OTLP endpoint means `otlp`.
    Unlike the SDK's own default (`otlp` always), nothing set sends nothing anywhere.
    """
    listed = environ.get("OTEL_TRACES_EXPORTER", "")
    names = [name.strip().lower() for name in listed.split(",") if name.strip()]
    if not names:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        names = ["otlp"] if endpoint else []
    if unknown := sorted(set(names) - set(EXPORTERS)):
        raise TelemetryConfigError(
            f"OTEL_TRACES_EXPORTER names {', '.join(unknown)}: use {', '.join(EXPORTERS)}"
        )
    if "otlp" in names:
        _check_otlp_protocol(environ)
    return [name for name in names if name != "none"]


def _check_otlp_protocol(environ: Mapping[str, str]) -> None:
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or OTLP_PROTOCOL
    )
    if protocol.strip() != OTLP_PROTOCOL:
        raise TelemetryConfigError(
            f"the OTLP protocol {protocol!r} is not installed: only {OTLP_PROTOCOL} "
            "(a collector's port 4318, not gRPC's 4317)"
        )


def installed_provider() -> trace.TracerProvider | None:
    """The provider set for this process, if any that records (not the API's stand-ins)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return provider


class Tracing:
    """What tracing this process does: `provider` None is off, and every method a no-op."""

    def __init__(
        self, provider: trace.TracerProvider | None, *, excluded_urls: str | None = None
    ) -> None:
        self.provider = provider
        self.excluded_urls = excluded_urls

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Tracing:
        """Tracing as the environment sets it up; the provider is made the first time only."""
        environ = os.environ if environ is None else environ
        if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return cls(None)
        names = exporter_names(environ)  # checked even when a provider exists: a typo fails
        provider = installed_provider()
        if provider is None and names:
            provider = _install_provider(names, environ)
        own_exclusions = any(environ.get(name) for name in _EXCLUDED_URLS_VARIABLES)
        return cls(provider, excluded_urls=None if own_exclusions else DEFAULT_EXCLUDED_URLS)

    def instrument_app(self, app: FastAPI) -> None:
        """One server span per request; none per ASGI message (a streamed turn sends
        thousands). Per app: a process may make many."""
        if self.provider is None:
            return
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            excluded_urls=self.excluded_urls,
            exclude_spans=["receive", "send"],
        )

    def instrument_engine(self, engine: AsyncEngine) -> None:
        """A span per statement on this engine.

        `SQLAlchemyInstrumentor().instrument()` acts once per process (and patches
        `create_engine` everywhere); the engine of the next app made in the same process needs
        the per-engine tracer it builds, which lets go of the engine when it is collected.
        """
        if self.provider is None:
            return
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
        from opentelemetry.instrumentation.sqlalchemy.version import __version__
        from opentelemetry.metrics import get_meter

        tracer = trace.get_tracer(
            "opentelemetry.instrumentation.sqlalchemy", __version__, self.provider
        )
        meter = get_meter("opentelemetry.instrumentation.sqlalchemy", __version__)
        connections = meter.create_up_down_counter(
            "db.client.connections.usage", unit="connections"
        )
        # The package ships no annotations for this module.
        EngineTracer(tracer, engine.sync_engine, connections)  # type: ignore[no-untyped-call]

    def instrument_http_client(self, client: httpx.AsyncClient) -> None:
        """A client span per request this client sends (the webhooks' attempts)."""
        if self.provider is None:
            return
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        HTTPXClientInstrumentor.instrument_client(client, tracer_provider=self.provider)

    async def flush(self) -> None:
        """Send what is queued as an app stops. The provider is shut down at process exit
        (its own atexit hook), not here: another app of this process may still use it."""
        force_flush = getattr(self.provider, "force_flush", None)
        if force_flush is not None:
            await asyncio.to_thread(force_flush, FLUSH_TIMEOUT_MILLIS)


def _install_provider(exporters: list[str], environ: Mapping[str, str]) -> trace.TracerProvider:
    """The SDK provider, each exporter behind a batch processor (its own thread), made global."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    service = environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME
    # Resource.create also reads OTEL_RESOURCE_ATTRIBUTES; the name given here wins.
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    for name in exporters:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    trace.set_tracer_provider(provider)
    logger.info("tracing on: service %s, exporting to %s", service, ", ".join(exporters))
    return provider


def _exporter(name: str) -> SpanExporter:
    """`console` prints each span as JSON on stdout; `otlp` posts to the collector that the
    OTEL_EXPORTER_OTLP_* variables name (the exporter reads them itself)."""
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()
