"""What the daemon has: agents (including ones the gateway did not create) and providers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.api.deps import AgentsDep, Prompter, Reader
from app.api.problems import problem_responses
from app.paseo.types import AgentDetail, AgentSummary, ArchiveResult, ProviderInfo, StopResult
from app.schemas import AGENT_ID_PATTERN, LABEL_FILTER_DESCRIPTION
from app.services.sessions import session_labels

router = APIRouter(tags=["agents"])
LabelFilter = Annotated[list[str], Query(description=LABEL_FILTER_DESCRIPTION)]

AgentId = Annotated[
    str, Path(pattern=AGENT_ID_PATTERN, description="Full agent id (UUID), as `GET /agents` shows")
]
PASEO_ERRORS = problem_responses(422, 502, 503, 504)


@router.get(
    "/agents",
    response_model=list[AgentSummary],
    summary="List the daemon's agents",
    responses=PASEO_ERRORS,
)
async def list_agents(
    agents: AgentsDep,
    principal: Reader,
    all: Annotated[bool, Query(description="Include archived agents")] = False,
    label: LabelFilter = [],  # noqa: B006 - FastAPI copies defaults
) -> list[AgentSummary]:
    return await agents.list_agents(principal, include_archived=all, labels=session_labels(label))


@router.get(
    "/agents/{agent_id}",
    response_model=AgentDetail,
    summary="Inspect one agent",
    responses=problem_responses(404, 422, 502, 503, 504),
)
async def get_agent(agent_id: AgentId, agents: AgentsDep, principal: Reader) -> AgentDetail:
    return await agents.get(agent_id, principal)


@router.post(
    "/agents/{agent_id}/stop",
    response_model=StopResult,
    summary="Interrupt the agent's running turn (no-op when idle)",
    responses=problem_responses(404, 422, 502, 503, 504),
)
async def stop_agent(agent_id: AgentId, agents: AgentsDep, principal: Prompter) -> StopResult:
    return await agents.stop(agent_id, principal)


@router.post(
    "/agents/{agent_id}/archive",
    response_model=ArchiveResult,
    summary="Archive the agent (Paseo's soft delete)",
    responses=problem_responses(404, 409, 422, 502, 503, 504),
)
async def archive_agent(
    agent_id: AgentId,
    agents: AgentsDep,
    principal: Prompter,
    force: Annotated[bool, Query(description="Archive even while running")] = False,
) -> ArchiveResult:
    return await agents.archive(agent_id, principal, force=force)


@router.get(
    "/providers",
    response_model=list[ProviderInfo],
    summary="Agent providers the daemon knows",
    responses=PASEO_ERRORS,
)
async def list_providers(agents: AgentsDep, principal: Reader) -> list[ProviderInfo]:
    del principal  # any key may read the provider list
    return await agents.providers()
