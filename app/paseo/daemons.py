"""One named daemon: a transport's client, and where that daemon's agents may work.

A `Daemon` is itself a `PaseoClient`: it passes every call to its transport and names itself
on each error it lets through, so the service layer can say whose failure it was (a daemon
that is down fails its own sessions' calls, and says so with its name).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping

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

_NO_LINK = DaemonLink("unknown")


class Daemon:
    """`client` under `name`; `workspace_roots` are folders on the daemon's machine."""

    def __init__(
        self, name: str, client: PaseoClient, workspace_roots: tuple[str, ...] = ()
    ) -> None:
        self.name = name
        self.client = client
        self.workspace_roots = workspace_roots

    @contextlib.contextmanager
    def _named(self) -> Iterator[None]:
        try:
            yield
        except PaseoError as exc:
            exc.daemon = exc.daemon or self.name
            raise

    async def _follow(self, events: AsyncIterator[TurnEvent]) -> AsyncIterator[TurnEvent]:
        """The transport's events; closing this closes the transport's stream (its
        children reaped) at once, not whenever the garbage collector gets to it."""
        try:
            with self._named():
                async for event in events:
                    yield event
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()

    async def ping(self) -> DaemonFacts:
        with self._named():
            return await self.client.ping()

    @property
    def link(self) -> DaemonLink:
        """The transport's link; a transport that keeps none and does not say so (a test
        double of the interface) counts as the CLI does: `unknown`."""
        link: DaemonLink = getattr(self.client, "link", _NO_LINK)
        return link

    async def connect(self, timeout: float) -> DaemonLink:
        return await self.client.connect(timeout)

    async def list_agents(
        self, *, include_archived: bool = False, labels: Mapping[str, str] | None = None
    ) -> list[AgentSummary]:
        with self._named():
            return await self.client.list_agents(include_archived=include_archived, labels=labels)

    async def inspect_agent(self, agent_id: str) -> AgentDetail:
        with self._named():
            return await self.client.inspect_agent(agent_id)

    async def import_agent(
        self,
        *,
        provider: str,
        session_id: str,
        cwd: str,
        labels: Mapping[str, str] | None = None,
    ) -> CreatedAgent:
        with self._named():
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
        return self._follow(
            self.client.start_agent_turn(agent, prompt, turn_key=turn_key, media=media)
        )

    def prompt_agent_turn(
        self,
        agent_id: str,
        prompt: str,
        *,
        turn_key: str | None = None,
        media: PromptMedia = NO_MEDIA,
    ) -> AsyncIterator[TurnEvent]:
        return self._follow(
            self.client.prompt_agent_turn(agent_id, prompt, turn_key=turn_key, media=media)
        )

    def resume_agent_turn(
        self, agent_id: str, prompt: str, cursor: str | None, *, turn_key: str | None = None
    ) -> AsyncIterator[TurnEvent]:
        return self._follow(
            self.client.resume_agent_turn(agent_id, prompt, cursor, turn_key=turn_key)
        )

    async def steer_agent_turn(
        self, agent_id: str, prompt: str, *, turn_key: str | None = None
    ) -> None:
        with self._named():
            await self.client.steer_agent_turn(agent_id, prompt, turn_key=turn_key)

    async def prompt_history(
        self, agent_id: str, prompt: str, *, turn_key: str | None = None
    ) -> PromptHistory:
        with self._named():
            return await self.client.prompt_history(agent_id, prompt, turn_key=turn_key)

    async def update_agent(
        self, agent_id: str, *, title: str | None = None, labels: Mapping[str, str] | None = None
    ) -> None:
        with self._named():
            await self.client.update_agent(agent_id, title=title, labels=labels)

    async def set_agent_mode(self, agent_id: str, mode: str) -> None:
        with self._named():
            await self.client.set_agent_mode(agent_id, mode)

    async def list_permissions(self, agent_id: str) -> list[PermissionRequest]:
        with self._named():
            return await self.client.list_permissions(agent_id)

    async def answer_permission(
        self, agent_id: str, permission_id: str, answer: PermissionAnswer
    ) -> None:
        with self._named():
            await self.client.answer_permission(agent_id, permission_id, answer)

    async def stop_agent(self, agent_id: str) -> StopResult:
        with self._named():
            return await self.client.stop_agent(agent_id)

    async def archive_agent(self, agent_id: str, *, force: bool = False) -> ArchiveResult:
        with self._named():
            return await self.client.archive_agent(agent_id, force=force)

    async def delete_agent(self, agent_id: str) -> DeleteResult:
        with self._named():
            return await self.client.delete_agent(agent_id)

    async def list_providers(self) -> list[ProviderInfo]:
        with self._named():
            return await self.client.list_providers()

    async def list_models(self, provider: str) -> list[ModelInfo]:
        with self._named():
            return await self.client.list_models(provider)

    async def aclose(self) -> None:
        await self.client.aclose()
