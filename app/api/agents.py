"""What the daemons have: agents (including ones the gateway did not create) and providers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.api.deps import AgentsDep, Prompter, Reader, audited
from app.api.problems import problem_responses
from app.paseo.daemon_config import DAEMON_NAME_PATTERN
from app.paseo.types import ArchiveResult, StopResult
from app.schemas import (
    AGENT_ID_PATTERN,
    LABEL_FILTER_DESCRIPTION,
    DaemonAgent,
    DaemonAgentDetail,
    DaemonProvider,
)
from app.services.sessions import session_labels

router = APIRouter(tags=["agents"])
LabelFilter = Annotated[list[str], Query(description=LABEL_FILTER_DESCRIPTION)]
DaemonFilter = Annotated[
    str | None,
    Query(
        pattern=DAEMON_NAME_PATTERN,
        description="Only this daemon's (as `/readyz` names them); unset: every daemon's, merged",
    ),
]
AgentDaemon = Annotated[
    str | None,
    Query(
        pattern=DAEMON_NAME_PATTERN,
        description="The agent's daemon; unset: its session's, or whichever daemon has it",
    ),
]
UNREACHABLE_HEADER = "X-Unreachable-Daemons"
MERGED = {
    "headers": {
        UNREACHABLE_HEADER: {
            "description": "The daemons that did not answer (left out of a merged list)",
            "schema": {"type": "string"},
        }
    }
}


def _name_unreachable(response: Response, unreachable: list[str]) -> None:
    if unreachable:
        response.headers[UNREACHABLE_HEADER] = ", ".join(unreachable)


AgentId = Annotated[
    str, Path(pattern=AGENT_ID_PATTERN, description="Full agent id (UUID), as `GET /agents` shows")
]
PASEO_ERRORS = problem_responses(422, 502, 503, 504)


@router.get(
    "/agents",
    response_model=list[DaemonAgent],
    summary="List the daemons' agents",
    responses={**PASEO_ERRORS, 200: MERGED},
)
async def list_agents(
    agents: AgentsDep,
    principal: Reader,
    response: Response,
    all: Annotated[bool, Query(description="Include archived agents")] = False,
    label: LabelFilter = [],  # noqa: B006 - FastAPI copies defaults
    daemon: DaemonFilter = None,
) -> list[DaemonAgent]:
    found, unreachable = await agents.list_agents(
        principal, include_archived=all, labels=session_labels(label), daemon=daemon
    )
    _name_unreachable(response, unreachable)
    return found


@router.get(
    "/agents/{agent_id}",
    response_model=DaemonAgentDetail,
    summary="Inspect one agent",
    responses=problem_responses(404, 422, 502, 503, 504),
)
async def get_agent(
    agent_id: AgentId, agents: AgentsDep, principal: Reader, daemon: AgentDaemon = None
) -> DaemonAgentDetail:
    return await agents.get(agent_id, principal, daemon)


@router.post(
    "/agents/{agent_id}/stop",
    dependencies=[audited("agent.stop")],
    response_model=StopResult,
    summary="Interrupt the agent's running turn (no-op when idle)",
    responses=problem_responses(404, 422, 502, 503, 504),
)
async def stop_agent(
    agent_id: AgentId, agents: AgentsDep, principal: Prompter, daemon: AgentDaemon = None
) -> StopResult:
    return await agents.stop(agent_id, principal, daemon)


@router.post(
    "/agents/{agent_id}/archive",
    dependencies=[audited("agent.archive")],
    response_model=ArchiveResult,
    summary="Archive the agent (Paseo's soft delete)",
    responses=problem_responses(404, 409, 422, 502, 503, 504),
)
async def archive_agent(
    agent_id: AgentId,
    agents: AgentsDep,
    principal: Prompter,
    force: Annotated[bool, Query(description="Archive even while running")] = False,
    daemon: AgentDaemon = None,
) -> ArchiveResult:
    return await agents.archive(agent_id, principal, force=force, daemon=daemon)


@router.get(
    "/providers",
    response_model=list[DaemonProvider],
    summary="Agent providers the daemons know",
    description=(
        "Each provider as one daemon offers it: `status` (ready, loading, unavailable, "
        "error), `enabled`, `default_mode` (an id) and `modes` as `{id, label}`: `mode` in "
        "`POST /sessions` and `PATCH /sessions/{id}` takes the `id`. A provider lists no modes "
        "while it is `loading`. Its models: `GET /v1/models` (`provider/model`)."
    ),
    responses={**PASEO_ERRORS, 200: MERGED},
)
async def list_providers(
    agents: AgentsDep, principal: Reader, response: Response, daemon: DaemonFilter = None
) -> list[DaemonProvider]:
    del principal  # any key may read the provider list
    found, unreachable = await agents.providers(daemon)
    _name_unreachable(response, unreachable)
    return found
