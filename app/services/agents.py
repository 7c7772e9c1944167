"""What the daemon has: agents and providers, straight from Paseo."""

from __future__ import annotations

from collections.abc import Mapping

from app.db import Database
from app.errors import AgentNotFound
from app.paseo.client import PaseoClient
from app.paseo.types import (
    AgentDetail,
    AgentSummary,
    ArchiveResult,
    ProviderInfo,
    StopResult,
)
from app.repositories import sessions as sessions_repo
from app.services.auth import Principal
from app.services.providers import daemon_providers


class AgentService:
    """Admins see every agent of the daemon; other keys only the agents of their sessions
    (anything else answers 404, as if it did not exist)."""

    def __init__(self, db: Database, paseo: PaseoClient) -> None:
        self.db = db
        self.paseo = paseo

    async def list_agents(
        self, principal: Principal, *, include_archived: bool, labels: Mapping[str, str]
    ) -> list[AgentSummary]:
        agents = await self.paseo.list_agents(include_archived=include_archived, labels=labels)
        if principal.is_admin:
            return agents
        mine = await self._agents_of(principal)
        return [agent for agent in agents if agent.id in mine]

    async def get(self, agent_id: str, principal: Principal) -> AgentDetail:
        await self._check_owner(agent_id, principal)
        return await self.paseo.inspect_agent(agent_id)

    async def stop(self, agent_id: str, principal: Principal) -> StopResult:
        await self._check_owner(agent_id, principal)
        return await self.paseo.stop_agent(agent_id)

    async def archive(self, agent_id: str, principal: Principal, *, force: bool) -> ArchiveResult:
        await self._check_owner(agent_id, principal)
        return await self.paseo.archive_agent(agent_id, force=force)

    async def _agents_of(self, principal: Principal) -> set[str]:
        if principal.key_id is None:
            return set()
        async with self.db.session() as session:
            return await sessions_repo.agent_ids_of_owner(session, principal.key_id)

    async def _check_owner(self, agent_id: str, principal: Principal) -> None:
        if not principal.is_admin and agent_id not in await self._agents_of(principal):
            raise AgentNotFound(f"no agent {agent_id}")

    async def providers(self) -> list[ProviderInfo]:
        return await daemon_providers(self.paseo)
