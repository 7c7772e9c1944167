"""What the daemons have: agents and providers, straight from Paseo, each naming its daemon.

Without a daemon named, every daemon is asked at once and the answers merged; a daemon that
does not answer is left out and named (`unreachable`), unless none answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from app.db import Database
from app.errors import AgentNotFound
from app.paseo.daemons import Daemon
from app.paseo.errors import PaseoError, PaseoErrorKind
from app.paseo.types import AgentDetail, ArchiveResult, StopResult
from app.repositories import sessions as sessions_repo
from app.schemas import DaemonAgent, DaemonAgentDetail, DaemonProvider
from app.services import audit
from app.services.auth import Principal
from app.services.daemons import Daemons
from app.services.providers import daemon_providers

_T = TypeVar("_T")


class AgentService:
    """Admins see every agent of every daemon; other keys only the agents of their sessions
    (anything else answers 404, as if it did not exist)."""

    def __init__(self, db: Database, daemons: Daemons) -> None:
        self.db = db
        self.daemons = daemons

    async def list_agents(
        self,
        principal: Principal,
        *,
        include_archived: bool,
        labels: Mapping[str, str],
        daemon: str | None = None,
    ) -> tuple[list[DaemonAgent], list[str]]:
        """The agents (of `daemon`, or of all), and the daemons that did not answer."""

        async def listed(one: Daemon) -> list[DaemonAgent]:
            agents = await one.list_agents(include_archived=include_archived, labels=labels)
            return [DaemonAgent(**agent.model_dump(), daemon=one.name) for agent in agents]

        per_daemon, unreachable = await self._ask(self._chosen(daemon), listed)
        agents = [agent for answer in per_daemon for agent in answer]
        if not principal.is_admin:
            mine = await self._agents_of(principal)
            agents = [agent for agent in agents if agent.id in mine]
        return agents, unreachable

    async def get(
        self, agent_id: str, principal: Principal, daemon: str | None = None
    ) -> DaemonAgentDetail:
        await self._check_owner(agent_id, principal)
        home = await self._known_home(agent_id, daemon)
        if home is None:
            home, detail = await self._search(agent_id)
        else:
            detail = await home.inspect_agent(agent_id)
        return DaemonAgentDetail(**detail.model_dump(), daemon=home.name)

    async def stop(
        self, agent_id: str, principal: Principal, daemon: str | None = None
    ) -> StopResult:
        await self._check_owner(agent_id, principal)
        result = await (await self._home_of(agent_id, daemon)).stop_agent(agent_id)
        await self._audit("agent.stop", agent_id)
        return result

    async def archive(
        self, agent_id: str, principal: Principal, *, force: bool, daemon: str | None = None
    ) -> ArchiveResult:
        await self._check_owner(agent_id, principal)
        home = await self._home_of(agent_id, daemon)
        result = await home.archive_agent(agent_id, force=force)
        await self._audit("agent.archive", agent_id)
        return result

    async def _audit(self, action: str, agent_id: str) -> None:
        """The change is Paseo's, not a row here: recorded once Paseo made it."""
        async with self.db.session() as session:
            await audit.record(session, action, target_id=agent_id)

    async def providers(self, daemon: str | None = None) -> tuple[list[DaemonProvider], list[str]]:
        """Each daemon's providers (of `daemon`, or of all), and the daemons that did not
        answer."""

        async def offered(one: Daemon) -> list[DaemonProvider]:
            return [
                DaemonProvider(**info.model_dump(), daemon=one.name)
                for info in await daemon_providers(one)
            ]

        per_daemon, unreachable = await self._ask(self._chosen(daemon), offered)
        return [info for answer in per_daemon for info in answer], unreachable

    def _chosen(self, daemon: str | None) -> list[Daemon]:
        return [self.daemons.get(daemon)] if daemon is not None else list(self.daemons)

    async def _ask(
        self, daemons: Sequence[Daemon], ask: Callable[[Daemon], Awaitable[_T]]
    ) -> tuple[list[_T], list[str]]:
        """`ask` of each daemon at once: the answers, and who could not be reached. One
        daemon asked, or none answering: its failure is raised."""
        results = await asyncio.gather(*(ask(one) for one in daemons), return_exceptions=True)
        answers: list[_T] = []
        unreachable: list[str] = []
        failures: list[BaseException] = []
        for one, result in zip(daemons, results, strict=True):
            if isinstance(result, PaseoError) and len(daemons) > 1:
                unreachable.append(one.name)
                failures.append(result)
            elif isinstance(result, BaseException):
                raise result
            else:
                answers.append(result)
        if failures and not answers:
            raise failures[0]
        return answers, unreachable

    async def _home_of(self, agent_id: str, daemon: str | None) -> Daemon:
        """The daemon that has `agent_id`: the one named, its session's, or the one of all
        that knows it."""
        home = await self._known_home(agent_id, daemon)
        return home if home is not None else (await self._search(agent_id))[0]

    async def _known_home(self, agent_id: str, daemon: str | None) -> Daemon | None:
        """The agent's daemon without asking Paseo: the one named, its session's, or the only
        one; None when only asking every daemon can tell."""
        if daemon is not None:
            return self.daemons.get(daemon)
        async with self.db.session() as session:
            record = await sessions_repo.get_session_by_agent_id(session, agent_id)
        if record is not None:
            return self.daemons.get(record.daemon)
        only = list(self.daemons)
        return only[0] if len(only) == 1 else None

    async def _search(self, agent_id: str) -> tuple[Daemon, AgentDetail]:
        """Ask every daemon at once; the first that has the agent, with what it said. None
        has it: 404; else a failure other than "not found" is raised."""
        candidates = list(self.daemons)
        results = await asyncio.gather(
            *(one.inspect_agent(agent_id) for one in candidates), return_exceptions=True
        )
        failures: list[BaseException] = []
        for one, result in zip(candidates, results, strict=True):
            if not isinstance(result, BaseException):
                return one, result
            if not (isinstance(result, PaseoError) and result.kind == PaseoErrorKind.NOT_FOUND):
                failures.append(result)
        if failures:
            raise failures[0]
        raise AgentNotFound(f"no daemon has agent {agent_id}")

    async def _agents_of(self, principal: Principal) -> set[str]:
        if principal.key_id is None:
            return set()
        async with self.db.session() as session:
            return await sessions_repo.agent_ids_of_owner(session, principal.key_id)

    async def _check_owner(self, agent_id: str, principal: Principal) -> None:
        if not principal.is_admin and agent_id not in await self._agents_of(principal):
            raise AgentNotFound(f"no agent {agent_id}")
