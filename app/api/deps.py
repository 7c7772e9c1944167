"""`Annotated` dependency aliases: routes name what they need, the app state provides it."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.errors import Forbidden, Unauthorized
from app.services.agents import AgentService
from app.services.auth import AUTH_DISABLED, AuthService, Principal
from app.services.health import HealthService
from app.services.sessions import SessionService
from app.services.turns import TurnService
from app.settings import Settings

bearer = HTTPBearer(
    auto_error=False,
    description="An API key: `Authorization: Bearer pgw_…` (`paseo-gateway keys create`).",
)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _sessions(request: Request) -> SessionService:
    service: SessionService = request.app.state.sessions
    return service


def _turns(request: Request) -> TurnService:
    service: TurnService = request.app.state.turns
    return service


def _agents(request: Request) -> AgentService:
    service: AgentService = request.app.state.agents
    return service


def _health(request: Request) -> HealthService:
    service: HealthService = request.app.state.health
    return service


def _auth(request: Request) -> AuthService:
    service: AuthService = request.app.state.auth
    return service


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller's key; with auth disabled, anyone on a loopback address."""
    if _settings(request).auth_disabled:
        if not _is_loopback(request.client.host if request.client else ""):
            raise Unauthorized("API keys are disabled here, so only local clients are served")
        return AUTH_DISABLED
    return await _auth(request).authenticate(credentials.credentials if credentials else None)


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    async def dependency(
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> Principal:
        if not principal.allows(scope):
            raise Forbidden(scope)
        return principal

    return dependency


async def stream_access(request: Request) -> Principal | None:
    """A turn's event stream opens with its stream token (`?token=`) or a read key.

    None means: admitted by token, which stands for that one turn, whoever owns it. Runs
    before the route's own parameters are checked, so a caller without either gets 401.
    """
    token = request.query_params.get("token")
    if token is None:
        principal = await current_principal(request, await bearer(request))
        if not principal.allows("read"):
            raise Forbidden("read")
        return principal
    if not await _auth(request).check_stream_token(token, request.path_params.get("turn_id", "")):
        raise Unauthorized("the stream token is invalid, expired, or for another turn")
    return None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


SettingsDep = Annotated[Settings, Depends(_settings)]
SessionsDep = Annotated[SessionService, Depends(_sessions)]
TurnsDep = Annotated[TurnService, Depends(_turns)]
AgentsDep = Annotated[AgentService, Depends(_agents)]
HealthDep = Annotated[HealthService, Depends(_health)]
AuthDep = Annotated[AuthService, Depends(_auth)]
Reader = Annotated[Principal, Depends(require("read"))]
Prompter = Annotated[Principal, Depends(require("prompt"))]
Admin = Annotated[Principal, Depends(require("admin"))]
