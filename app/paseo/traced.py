"""A span for every call the gateway makes to Paseo, whichever transport carries it.

`TracedPaseoClient` wraps a transport's client where the gateway builds it (`app.main`), so
neither transport, nor a test double, needs a line of tracing. Each call is a client span
named `paseo.<method>`; a turn's stream keeps its span open until the stream ends. With no
tracer provider set up, `get_tracer` hands out a no-op tracer: a call then costs a few lookups.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from app.paseo.client import PaseoClient
from app.paseo.errors import PaseoError
from app.paseo.media import NO_MEDIA, PromptMedia
from app.paseo.types import (
    AgentDetail,
    AgentSummary,
    ArchiveResult,
    CreatedAgent,
    DaemonFacts,
    DaemonLink,
    DeleteResult,
    ModelInfo,
    NewAgent,
    PermissionAnswer,
    PermissionRequest,
    PromptHistory,
    ProviderInfo,
    StopResult,
    TurnEvent,
)

AGENT_ID = "paseo.agent_id"
PROVIDER = "paseo.provider"
ERROR_CODE = "paseo.error_code"
DAEMON = "paseo_gateway.daemon"
# A turn's key is the gateway's turn id: the same attribute as on the turn's own span.
TURN_ID = "paseo_gateway.turn_id"


def _attributes(
    daemon: str,
    *,
    agent_id: str | None = None,
    provider: str | None = None,
    turn_key: str | None = None,
) -> dict[str, str]:
    named = {AGENT_ID: agent_id, PROVIDER: provider, TURN_ID: turn_key}
    return {DAEMON: daemon, **{key: value for key, value in named.items() if value is not None}}


def _mark_failed(span: trace.Span, exc: Exception) -> None:
    """What `start_as_current_span` does itself, for the spans a stream ends by hand."""
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


class TracedPaseoClient:
    """`client`, each of its calls in a span saying which `daemon` it went to."""

    def __init__(self, client: PaseoClient, daemon: str) -> None:
        self.client = client
        self.daemon = daemon

    @contextlib.contextmanager
    def _call(self, method: str, **attributes: str | None) -> Iterator[None]:
        """The current span while the call runs; a `PaseoError` adds its code."""
        tracer = trace.get_tracer(__name__)
        with tracer.start_as_current_span(
            f"paseo.{method}",
            kind=SpanKind.CLIENT,
            attributes=_attributes(self.daemon, **attributes),
        ) as span:
            try:
                yield
            except PaseoError as exc:
                span.set_attribute(ERROR_CODE, exc.code)
                raise

    async def _follow(
        self, method: str, events: AsyncIterator[TurnEvent], **attributes: str | None
    ) -> AsyncIterator[TurnEvent]:
        """The stream's events inside one span, from the first read to the end.

        The span is never made current: an async generator runs in its consumer's context,
        so one made current here would leak to the consumer between events.
        """
        tracer = trace.get_tracer(__name__)
        span = tracer.start_span(
            f"paseo.{method}",
            kind=SpanKind.CLIENT,
            attributes=_attributes(self.daemon, **attributes),
        )
        try:
            async for event in events:
                yield event
        except PaseoError as exc:
            span.set_attribute(ERROR_CODE, exc.code)
            _mark_failed(span, exc)
            raise
        except Exception as exc:
            _mark_failed(span, exc)
            raise
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()
            span.end()

    async def ping(self) -> DaemonFacts:
        with self._call("ping"):
            return await self.client.ping()

    @property
    def link(self) -> DaemonLink:
        """Asks nothing of Paseo, so no span (a client without one raises AttributeError,
        which `Daemon.link` takes as `unknown`)."""
        return self.client.link

    async def connect(self, timeout: float) -> DaemonLink:
        with self._call("connect"):
            return await self.client.connect(timeout)

    async def list_agents(
        self, *, include_archived: bool = False, labels: Mapping[str, str] | None = None
    ) -> list[AgentSummary]:
        with self._call("list_agents"):
            return await self.client.list_agents(include_archived=include_archived, labels=labels)

    async def inspect_agent(self, agent_id: str) -> AgentDetail:
        with self._call("inspect_agent", agent_id=agent_id):
            return await self.client.inspect_agent(agent_id)

    async def import_agent(
        self,
        *,
        provider: str,
        session_id: str,
        cwd: str,
        labels: Mapping[str, str] | None = None,
    ) -> CreatedAgent:
        with self._call("import_agent", provider=provider):
            return await self.client.import_agent(
                provider=provider, session_id=session_id, cwd=cwd, labels=labels
            )

    def start_agent_turn(
        self,
        agent: NewAgent,
        prompt: str,
        *,
        turn_key: str | None = None,
        media: PromptMedia = NO_MEDIA,
    ) -> AsyncIterator[TurnEvent]:
        events = self.client.start_agent_turn(agent, prompt, turn_key=turn_key, media=media)
        return self._follow("start_agent_turn", events, provider=agent.provider, turn_key=turn_key)

    def prompt_agent_turn(
        self,
        agent_id: str,
        prompt: str,
        *,
        turn_key: str | None = None,
        media: PromptMedia = NO_MEDIA,
    ) -> AsyncIterator[TurnEvent]:
        events = self.client.prompt_agent_turn(agent_id, prompt, turn_key=turn_key, media=media)
        return self._follow("prompt_agent_turn", events, agent_id=agent_id, turn_key=turn_key)

    def resume_agent_turn(
        self, agent_id: str, prompt: str, cursor: str | None, *, turn_key: str | None = None
    ) -> AsyncIterator[TurnEvent]:
        events = self.client.resume_agent_turn(agent_id, prompt, cursor, turn_key=turn_key)
        return self._follow("resume_agent_turn", events, agent_id=agent_id, turn_key=turn_key)

    async def steer_agent_turn(
        self, agent_id: str, prompt: str, *, turn_key: str | None = None
    ) -> None:
        with self._call("steer_agent_turn", agent_id=agent_id):
            await self.client.steer_agent_turn(agent_id, prompt, turn_key=turn_key)

    async def prompt_history(
        self, agent_id: str, prompt: str, *, turn_key: str | None = None
    ) -> PromptHistory:
        with self._call("prompt_history", agent_id=agent_id, turn_key=turn_key):
            return await self.client.prompt_history(agent_id, prompt, turn_key=turn_key)

    async def update_agent(
        self, agent_id: str, *, title: str | None = None, labels: Mapping[str, str] | None = None
    ) -> None:
        with self._call("update_agent", agent_id=agent_id):
            await self.client.update_agent(agent_id, title=title, labels=labels)

    async def set_agent_mode(self, agent_id: str, mode: str) -> None:
        with self._call("set_agent_mode", agent_id=agent_id):
            await self.client.set_agent_mode(agent_id, mode)

    async def list_permissions(self, agent_id: str) -> list[PermissionRequest]:
        with self._call("list_permissions", agent_id=agent_id):
            return await self.client.list_permissions(agent_id)

    async def answer_permission(
        self, agent_id: str, permission_id: str, answer: PermissionAnswer
    ) -> None:
        with self._call("answer_permission", agent_id=agent_id):
            await self.client.answer_permission(agent_id, permission_id, answer)

    async def stop_agent(self, agent_id: str) -> StopResult:
        with self._call("stop_agent", agent_id=agent_id):
            return await self.client.stop_agent(agent_id)

    async def archive_agent(self, agent_id: str, *, force: bool = False) -> ArchiveResult:
        with self._call("archive_agent", agent_id=agent_id):
            return await self.client.archive_agent(agent_id, force=force)

    async def delete_agent(self, agent_id: str) -> DeleteResult:
        with self._call("delete_agent", agent_id=agent_id):
            return await self.client.delete_agent(agent_id)

    async def list_providers(self) -> list[ProviderInfo]:
        with self._call("list_providers"):
            return await self.client.list_providers()

    async def list_models(self, provider: str) -> list[ModelInfo]:
        with self._call("list_models", provider=provider):
            return await self.client.list_models(provider)

    async def aclose(self) -> None:
        with self._call("aclose"):
            await self.client.aclose()
