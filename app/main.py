"""The FastAPI application: lifespan wiring, routers and problem handlers."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.exc import IntegrityError

from app.api import (
    agents,
    docs,
    health,
    keys,
    metrics,
    openai,
    permissions,
    search,
    sessions,
    turns,
    ui,
    usage,
    webhooks,
)
from app.api.middleware import (
    BodyLimitMiddleware,
    MetricsMiddleware,
    RequestIdMiddleware,
    RequireCredentialsMiddleware,
    UnexpectedErrorMiddleware,
)
from app.api.openai_errors import OPENAI_MEDIA_TYPE, speaks_openai
from app.api.problems import (
    PROBLEM_MEDIA_TYPE,
    Problem,
    install_problem_handlers,
    problem_responses,
)
from app.db import Database
from app.logs import configure_logging
from app.migrations import upgrade_to_head_async
from app.paseo.cli.client import MAX_RUN_PROMPT_BYTES, CliPaseoClient
from app.paseo.client import PaseoClient
from app.paseo.daemon.client import DaemonPaseoClient
from app.paseo.daemon.target import resolve_target
from app.paseo.daemon_config import DEFAULT_DAEMON, DaemonSpec
from app.paseo.daemons import Daemon
from app.paseo.errors import PaseoError
from app.paseo.traced import TracedPaseoClient
from app.services import audit
from app.services.agents import AgentService
from app.services.auth import AuthService
from app.services.chat_completions import ChatCompletionService
from app.services.daemons import Daemons
from app.services.health import HealthService
from app.services.permissions import PermissionService
from app.services.prompt_media import image_body_bytes
from app.services.sessions import SessionDefaults, SessionService
from app.services.turn.listener import EventListener
from app.services.turn.service import TurnService, TurnSettings
from app.services.usage import UsageService
from app.services.webhooks.dispatcher import WebhookDispatcher
from app.services.webhooks.sender import SendPolicy, WebhookSender
from app.services.webhooks.service import WebhookService
from app.settings import Settings, get_settings
from app.telemetry import Tracing

logger = logging.getLogger(__name__)

# Room in a request body for everything besides the prompt (labels, title, JSON syntax).
BODY_OVERHEAD_BYTES = 64 * 1024
# How often each process deletes audit records past their retention.
AUDIT_PRUNE_SECONDS = 3600.0

DESCRIPTION = """\
Drive [Paseo](https://paseo.sh) coding agents over plain HTTP. A **session** is one Paseo
agent; prompts stream back as Server-Sent Events. Every error is `application/problem+json`
with a stable `code`.
"""


def make_paseo_client(settings: Settings, spec: DaemonSpec) -> PaseoClient:
    """The transport `settings.transport` names, to the daemon `spec` describes."""
    if settings.transport == "daemon":
        target = resolve_target(spec.host, spec.home, dict(os.environ))
        return DaemonPaseoClient(target, name=spec.name)
    return CliPaseoClient(
        settings.paseo_bin,
        host=spec.host,
        home=str(spec.home) if spec.home else None,
        max_processes=settings.max_cli_processes,
        timeout=settings.cli_timeout_seconds,
    )


def make_daemons(settings: Settings) -> Daemons:
    """Every configured daemon, each on a transport of its own."""
    return Daemons(
        [
            Daemon(
                spec.name,
                TracedPaseoClient(make_paseo_client(settings, spec), spec.name),
                spec.workspace_roots,
            )
            for spec in settings.daemon_specs()
        ]
    )


def first_prompt_limit(settings: Settings) -> int | None:
    """The CLI passes a session's first prompt to `paseo run` as an argument; the daemon
    takes it in a frame as large as any other prompt."""
    return MAX_RUN_PROMPT_BYTES if settings.transport == "cli" else None


def paseo_binary_needed(settings: Settings) -> str | None:
    """The CLI readiness checks for: only the CLI transport needs one."""
    return settings.paseo_bin if settings.transport == "cli" else None


def create_app(settings: Settings | None = None, paseo: PaseoClient | None = None) -> FastAPI:
    """The gateway; `paseo` (tests) replaces every configured daemon with one client."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)
    tracing = Tracing.from_environ()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            await upgrade_to_head_async(settings.database_url)
        db = Database.from_url(settings.database_url, pool_size=settings.database_pool_size)
        tracing.instrument_engine(db.engine)
        daemons = (
            Daemons.single(
                TracedPaseoClient(paseo, DEFAULT_DAEMON),
                [str(root) for root in settings.workspace_root_paths],
            )
            if paseo is not None
            else make_daemons(settings)
        )
        turn_service = TurnService(
            db,
            daemons,
            TurnSettings(
                timeout_seconds=settings.turn_timeout_seconds,
                max_concurrent=settings.max_concurrent_turns,
                idle_timeout_seconds=settings.turn_idle_timeout_seconds,
                permission_timeout_seconds=settings.permission_timeout_seconds,
                heartbeat_seconds=settings.turn_heartbeat_seconds,
                stale_seconds=settings.turn_stale_seconds,
                cancel_confirm_seconds=settings.cancel_confirm_seconds,
                prompt_rate_per_minute=settings.prompt_rate_limit_per_minute,
                max_first_prompt_bytes=first_prompt_limit(settings),
                takes_attachments=settings.transport == "daemon",
            ),
        )
        defaults = SessionDefaults(
            provider=settings.default_provider,
            model=settings.default_model,
            cwd=str(settings.default_cwd),
            max_prompt_bytes=settings.max_prompt_bytes,
        )
        auth = AuthService(
            db,
            stream_token_seconds=settings.stream_token_seconds,
            key_cache_seconds=settings.key_cache_seconds,
        )
        if not settings.auth_disabled:
            await _bootstrap_admin_key(auth, settings)
        app.state.settings = settings
        app.state.db = db
        sessions_service = SessionService(db, daemons, turn_service, defaults)
        app.state.auth = auth
        app.state.turns = turn_service
        app.state.sessions = sessions_service
        app.state.agents = AgentService(db, daemons)
        app.state.chats = ChatCompletionService(sessions_service, turn_service)
        app.state.permissions = PermissionService(db, daemons)
        app.state.health = health_service = HealthService(
            db,
            daemons,
            paseo_binary_needed(settings),
            daemon_check_seconds=settings.daemon_check_seconds,
        )
        policy = SendPolicy(
            allow_http=settings.webhooks_allow_http,
            allow_private=settings.webhooks_allow_private_targets,
            timeout_seconds=settings.webhooks_timeout_seconds,
        )
        app.state.webhooks = WebhookService(db, policy)
        app.state.usage = UsageService(db)
        sender = WebhookSender(policy)
        tracing.instrument_http_client(sender.http_client)
        dispatcher = WebhookDispatcher(
            db,
            sender,
            schedule=settings.webhooks_retry_seconds,
            poll_seconds=settings.webhooks_poll_seconds,
        )
        turn_service.start_background()
        await dispatcher.start()
        listener = EventListener(db, settings.database_url, turn_service.notifier)
        await listener.start()
        health_service.start_background()
        reconcile = asyncio.create_task(_reconcile_sessions(sessions_service))
        pruner = asyncio.create_task(_prune_audit(db, settings.audit_retention_days))
        try:
            yield
        finally:
            reconcile.cancel()
            pruner.cancel()
            await asyncio.gather(reconcile, pruner, return_exceptions=True)
            await health_service.aclose()
            await dispatcher.aclose()
            await turn_service.aclose()
            await listener.aclose()
            await daemons.aclose()
            await db.dispose()
            await tracing.flush()

    app = FastAPI(
        title="Paseo Gateway",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # /docs is app.api.docs (Swagger UI from the gateway itself, no CDN); no ReDoc.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        openapi_url="/openapi.json" if settings.public_docs else None,
    )
    install_problem_handlers(app)
    app.include_router(health.router)
    protected = problem_responses(401, 403)
    app.include_router(sessions.router, responses=protected)
    app.include_router(turns.router, responses={**protected, **problem_responses(429)})
    app.include_router(permissions.router, responses=protected)
    app.include_router(agents.router, responses=protected)
    app.include_router(keys.router, responses=protected)
    app.include_router(webhooks.router, responses=protected)
    app.include_router(usage.router, responses=protected)
    app.include_router(search.router, responses=protected)
    app.include_router(metrics.router, responses=protected)
    app.include_router(openai.router)
    app.include_router(ui.router)
    app.include_router(docs.pages)
    if not settings.public_docs:
        app.include_router(docs.protected_openapi)
    if not settings.auth_disabled:
        app.add_middleware(
            RequireCredentialsMiddleware, public_paths=_public_paths(app), routes=app.router.routes
        )
    # Outside the key check: preflights need no key, and a 401 still carries CORS headers.
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Idempotency-Key",
                "Last-Event-ID",
                "X-Paseo-Session",
            ],
            expose_headers=[
                "X-Request-ID",
                "X-Turn-Id",
                "X-Stream-Token",
                "X-Paseo-Session",
                "Link",
                "Content-Location",
                "Retry-After",
            ],
        )
    # A prompt as JSON may escape every byte (\\uXXXX: 6 bytes each), plus the most images a
    # prompt may carry (base64), plus some room. The images' own limits are checked after.
    body_limit = 6 * settings.max_prompt_bytes + image_body_bytes() + BODY_OVERHEAD_BYTES
    app.add_middleware(BodyLimitMiddleware, max_bytes=body_limit)
    app.add_middleware(UnexpectedErrorMiddleware)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(RequestIdMiddleware)
    tracing.instrument_app(app)
    _register_problem_schema(app)
    return app


def _public_paths(app: FastAPI) -> frozenset[str]:
    paths = {"/healthz", "/readyz", *ui.PUBLIC_PATHS, *docs.PUBLIC_PATHS}
    if app.openapi_url:
        paths.add(app.openapi_url)
    return frozenset(paths)


async def _bootstrap_admin_key(auth: AuthService, settings: Settings) -> None:
    """No silent "no auth": with no key at all, make an admin key and say so once."""
    configured = settings.admin_key.get_secret_value() if settings.admin_key else None
    try:
        created = await auth.bootstrap(configured)
    except IntegrityError:
        return  # another gateway process made the same configured key at the same moment
    if created is None:
        return
    if configured:
        logger.warning("created the admin API key from PASEO_GATEWAY_ADMIN_KEY")
    else:
        # Printed, not logged: the one place this secret ever appears.
        print(
            f"paseo-gateway: no API keys existed; created an admin key (shown once):\n"
            f"  {created.secret}\n"
            "  use it as `Authorization: Bearer <key>`; make others with "
            "`paseo-gateway keys create`",
            file=sys.stderr,
            flush=True,
        )


async def _reconcile_sessions(sessions_service: SessionService) -> None:
    """At start: mark sessions whose agents were archived or deleted while we were away."""
    try:
        changed = await sessions_service.reconcile_agents()
    except PaseoError as exc:
        logger.warning("could not check the sessions' agents at start: %s", exc)
    except Exception:
        logger.exception("checking the sessions' agents at start failed")
    else:
        if changed:
            logger.info("%d sessions lost their agent outside the gateway", changed)


async def _prune_audit(db: Database, keep_days: float) -> None:
    """Delete audit records past their retention: at start, then every hour."""
    while True:
        try:
            pruned = await audit.prune(db, keep_days=keep_days)
        except Exception:
            logger.exception("pruning the audit trail failed")
        else:
            if pruned:
                logger.info("deleted %d audit records older than %g days", pruned, keep_days)
        await asyncio.sleep(AUDIT_PRUNE_SECONDS)


def _register_problem_schema(app: FastAPI) -> None:
    """Document every error answer as what it is: problem+json with the `Problem` schema.

    FastAPI documents its own 422 as plain JSON; a route with a body can also answer 400 for
    a body that is not JSON. Both are rewritten here so /docs matches the wire.
    """
    original = app.openapi

    def openapi() -> dict[str, Any]:
        schema = original()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault("Problem", Problem.model_json_schema())
        for path, path_item in schema.get("paths", {}).items():
            for operation in path_item.values():
                _document_operation_problems(operation, openai=speaks_openai(path))
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_operation_problems(operation: dict[str, Any], *, openai: bool) -> None:
    """Problem+json, or OpenAI's error shape on its routes (where a bad field is a 400)."""
    responses = operation.setdefault("responses", {})
    if "requestBody" in operation:
        responses.setdefault("400", {"description": "The body is not valid JSON"})
    if openai:
        if (invalid := responses.pop("422", None)) is not None:
            responses.setdefault("400", invalid)
        problem = {OPENAI_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/OpenAIError"}}}
    else:
        problem = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for code, response in responses.items():
        if code.isdigit() and int(code) >= 400:
            response["content"] = problem
