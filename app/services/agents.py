"""What the daemon has: agents and providers, straight from Paseo."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from app.paseo.client import PaseoClient
from app.paseo.types import (
    AgentDetail,
    AgentSummary,
    ArchiveResult,
    ProviderInfo,
    StopResult,
)


class AgentService:
    def __init__(self, paseo: PaseoClient) -> None:
        self.paseo = paseo

    async def list_agents(
        self, *, include_archived: bool, labels: Mapping[str, str]
    ) -> list[AgentSummary]:
        return await self.paseo.list_agents(include_archived=include_archived, labels=labels)

    async def get(self, agent_id: str) -> AgentDetail:
        return await self.paseo.inspect_agent(agent_id)

    async def stop(self, agent_id: str) -> StopResult:
        return await self.paseo.stop_agent(agent_id)

    async def archive(self, agent_id: str, *, force: bool) -> ArchiveResult:
        return await self.paseo.archive_agent(agent_id, force=force)

    async def providers(self) -> list[ProviderInfo]:
        # With the daemon down, `provider ls` prints a static list and exits 0: ask `ls` too.
        _, providers = await asyncio.gather(self.paseo.ping(), self.paseo.list_providers())
        return providers
