"""`Annotated` dependency aliases: routes name what they need, the app state provides it."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database
from app.errors import Forbidden, Unauthorized
from app.services import audit
from app.services.agents import AgentService
from app.services.auth import AUTH_DISABLED, AuthService, Principal
from app.services.chat_completions import ChatCompletionService
from app.services.health import HealthService
from app.services.permissions import PermissionService
from app.services.sessions import SessionService
from app.services.turn.service import TurnService
from app.services.usage import UsageService
from app.services.webhooks.service import WebhookService
from app.settings import Settings

StateT = TypeVar("StateT")

bearer = HTTPBearer(
    auto_error=False,
    description="An API key: `Authorization: Bearer pgw_…` (`paseo-gateway keys create`).",
)


def _state(request: Request, name: str, kind: type[StateT]) -> StateT:
    """What the lifespan put on `app.state` under `name`."""
    value = getattr(request.app.state, name)
    assert isinstance(value, kind), f"app.state.{name} is not a {kind.__name__}"
    return value


def _from_state(name: str, kind: type[StateT]) -> Callable[[Request], Awaitable[StateT]]:
    """A dependency for `app.state.<name>`: async, as FastAPI runs a plain one in a thread."""

    async def get(request: Request) -> StateT:
        return _state(request, name, kind)

    return get


_settings = _from_state("settings", Settings)
_sessions = _from_state("sessions", SessionService)
_turns = _from_state("turns", TurnService)
_agents = _from_state("agents", AgentService)
_permissions = _from_state("permissions", PermissionService)
_health = _from_state("health", HealthService)
_auth = _from_state("auth", AuthService)
_chats = _from_state("chats", ChatCompletionService)
_webhooks = _from_state("webhooks", WebhookService)
_usage = _from_state("usage", UsageService)
_db = _from_state("db", Database)


async def read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One read session for a route that only reads, shared with its key lookup.

    A unit of work costs more than its statements (a pooled connection, its ping, the
    session's set-up), so a `GET /sessions` that used two paid that twice. Closed as soon as
    the route returns (`scope="function"`), before the answer is sent.
    """
    async with _state(request, "db", Database).read() as session:
        yield session


ReadSession = Annotated[AsyncSession, Depends(read_session, scope="function")]


async def _principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None, reads: AsyncSession | None
) -> Principal:
    """The caller's key; with auth disabled, anyone on a loopback address."""
    if _state(request, "settings", Settings).auth_disabled:
        if not _is_loopback(request.client.host if request.client else ""):
            raise Unauthorized("API keys are disabled here, so only local clients are served")
        audit.caller_known(None, AUTH_DISABLED.name)
        return AUTH_DISABLED
    secret = credentials.credentials if credentials else None
    principal = await _state(request, "auth", AuthService).authenticate(secret, reads=reads)
    audit.caller_known(principal.key_id, principal.name)
    return principal


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller, looked up in a read unit of its own (the route may call Paseo next)."""
    return await _principal(request, credentials, None)


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    async def dependency(
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> Principal:
        if not principal.allows(scope):
            raise Forbidden(scope)
        return principal

    return dependency


def audited(action: str) -> Any:
    """A route dependency naming the change the route makes, for the audit trail: a refused
    request is recorded with it (a done one is recorded by the service, with the change)."""

    async def dependency() -> None:
        audit.declare_action(action)

    return Depends(dependency)


async def read_only_reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    reads: ReadSession,
) -> Principal:
    """`Reader` for a route that only reads: the key is looked up in the route's session."""
    principal = await _principal(request, credentials, reads)
    if not principal.allows("read"):
        raise Forbidden("read")
    return principal


async def stream_access(request: Request) -> Principal | None:
    """A turn's event stream opens with its stream token (`?token=`) or a read key.

    None means: admitted by token, which stands for that one turn, whoever owns it. Runs
    before the route's own parameters are checked, so a caller without either gets 401.
    """
    token = request.query_params.get("token")
    if token is None:
        return await require("read")(await current_principal(request, await bearer(request)))
    turn_id = request.path_params.get("turn_id", "")
    keyless = _state(request, "settings", Settings).auth_disabled
    auth = _state(request, "auth", AuthService)
    if not await auth.check_stream_token(token, turn_id, keyless=keyless):
        raise Unauthorized(
            "the stream token is invalid, expired, for another turn, or its key was revoked"
        )
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
PermissionsDep = Annotated[PermissionService, Depends(_permissions)]
HealthDep = Annotated[HealthService, Depends(_health)]
AuthDep = Annotated[AuthService, Depends(_auth)]
UsageDep = Annotated[UsageService, Depends(_usage)]
DbDep = Annotated[Database, Depends(_db)]
ChatsDep = Annotated[ChatCompletionService, Depends(_chats)]
WebhooksDep = Annotated[WebhookService, Depends(_webhooks)]
Reader = Annotated[Principal, Depends(require("read"))]
ReadOnlyReader = Annotated[Principal, Depends(read_only_reader)]
Prompter = Annotated[Principal, Depends(require("prompt"))]
Admin = Annotated[Principal, Depends(require("admin"))]
WebhookManager = Annotated[Principal, Depends(require("webhooks"))]
