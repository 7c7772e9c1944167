"""The one interface the service layer uses to talk to Paseo, in the gateway's own terms.

Two transports implement it: the CLI (`app.paseo.cli.client.CliPaseoClient`, one child process per
call) and the daemon's WebSocket (`app.paseo.daemon.client.DaemonPaseoClient`). Neither's
shapes leak through it: both map what they hear to `app.paseo.types`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Protocol

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


class PaseoClient(Protocol):
    """Every method raises `app.paseo.errors.PaseoError` on failure."""

    async def ping(self) -> DaemonFacts:
        """Succeed only when the daemon answers (readiness), saying what it learnt."""

    @property
    def link(self) -> DaemonLink:
        """The transport's own connection to the daemon now (nothing is asked: the daemon
        transport's socket; the CLI has none and says `unknown`)."""
        ...

    async def connect(self, timeout: float) -> DaemonLink:
        """Try to reach the daemon now rather than when a reconnect backoff ends: one attempt,
        shared by every caller meanwhile, waited for at most `timeout` (it may finish later).
        Returns the link then; the CLI has nothing to connect and says `unknown` at once."""
        ...

    async def list_agents(
        self, *, include_archived: bool = False, labels: Mapping[str, str] | None = None
    ) -> list[AgentSummary]: ...

    async def inspect_agent(self, agent_id: str) -> AgentDetail: ...

    async def import_agent(
        self,
        *,
        provider: str,
        session_id: str,
        cwd: str,
        labels: Mapping[str, str] | None = None,
    ) -> CreatedAgent: ...

    def start_agent_turn(
        self,
        agent: NewAgent,
        prompt: str,
        *,
        turn_key: str | None = None,
        media: PromptMedia = NO_MEDIA,
    ) -> AsyncIterator[TurnEvent]:
        """Create an agent with its first prompt and follow that turn.

        `turn_key` (the gateway's turn id) names the prompt where the transport can make
        Paseo keep it (the daemon's message id): recovery then finds it by key, not by text.
        `media` goes with the prompt (the CLI raises MEDIA_UNSUPPORTED for attachments).

        Yields `TurnStarted` (nothing is created before the consumer asks for more), then
        `AgentStarted`, `PromptDelivered`, the turn's output, and exactly one `TurnEnded`.
        """
        ...

    def prompt_agent_turn(
        self,
        agent_id: str,
        prompt: str,
        *,
        turn_key: str | None = None,
        media: PromptMedia = NO_MEDIA,
    ) -> AsyncIterator[TurnEvent]:
        """Send a prompt (with `media`) to an existing agent and follow the turn until
        `TurnEnded`.

        Yields `TurnStarted` before anything is sent, `PromptDelivered` once Paseo is seen to
        have the prompt (at the latest before `TurnEnded`, unless it never got it).
        """
        ...

    def resume_agent_turn(
        self, agent_id: str, prompt: str, cursor: str | None, *, turn_key: str | None = None
    ) -> AsyncIterator[TurnEvent]:
        """Follow a turn that is already running (after a gateway restart), or has just ended.

        `cursor` is the one this transport put on the last output event the gateway stored
        (None: nothing stored yet). Yields the output after it first, then `TurnStarted`,
        live output and `TurnEnded`. The outcome is `interrupted` if another prompt took the
        agent over.
        """
        ...

    async def steer_agent_turn(
        self, agent_id: str, prompt: str, *, turn_key: str | None = None
    ) -> None:
        """Hand `prompt` to the agent's running turn, which goes on: no new turn starts.

        Returns once Paseo has taken it; the running turn's follower then yields
        `PromptSteered` where the text joins the turn. Raises `STEER_UNSUPPORTED` where this
        Paseo (its version, or its CLI) cannot steer, and `NO_ACTIVE_TURN` when the agent
        runs no turn: nothing is sent then.
        """

    async def prompt_history(
        self, agent_id: str, prompt: str, *, turn_key: str | None = None
    ) -> PromptHistory:
        """What the agent's transcript records of `prompt`, or of the prompt sent with
        `turn_key` where the transport keeps keys (recovery decides from it, before it
        resumes)."""

    async def update_agent(
        self, agent_id: str, *, title: str | None = None, labels: Mapping[str, str] | None = None
    ) -> None:
        """Rename the agent and/or merge `labels` into its own (Paseo never removes one)."""

    async def set_agent_mode(self, agent_id: str, mode: str) -> None:
        """Switch the agent's mode (Paseo allows it while a turn runs)."""

    async def list_permissions(self, agent_id: str) -> list[PermissionRequest]:
        """The agent's pending permission requests (the CLI says less of each: no kind,
        input or actions)."""

    async def answer_permission(
        self, agent_id: str, permission_id: str, answer: PermissionAnswer
    ) -> None:
        """Allow or deny one pending request; returns once Paseo has taken the answer."""

    async def stop_agent(self, agent_id: str) -> StopResult: ...

    async def archive_agent(self, agent_id: str, *, force: bool = False) -> ArchiveResult: ...

    async def delete_agent(self, agent_id: str) -> DeleteResult: ...

    async def list_providers(self) -> list[ProviderInfo]: ...

    async def list_models(self, provider: str) -> list[ModelInfo]:
        """The models `provider` offers; raises `PaseoError` for a provider the daemon lacks
        or cannot ask."""

    async def aclose(self) -> None:
        """End every child process this client still has running."""
