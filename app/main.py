"""The FastAPI application: lifespan wiring, routers and problem handlers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api import agents, health, sessions, turns
from app.api.problems import Problem, install_problem_handlers
from app.db import Database
from app.migrations import upgrade_to_head_async
from app.paseo.cli import CliPaseoClient
from app.paseo.client import PaseoClient
from app.paseo.errors import PaseoError
from app.services.agents import AgentService
from app.services.health import HealthService
from app.services.sessions import SessionDefaults, SessionService
from app.services.turns import TurnService, TurnSettings
from app.settings import Settings, get_settings

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Drive [Paseo](https://paseo.sh) coding agents over plain HTTP. A **session** is one Paseo
agent; prompts stream back as Server-Sent Events. Every error is `application/problem+json`
with a stable `code`.
"""


def make_paseo_client(settings: Settings) -> CliPaseoClient:
    return CliPaseoClient(
        settings.paseo_bin,
        host=settings.paseo_host.get_secret_value() if settings.paseo_host else None,
        home=str(settings.paseo_home) if settings.paseo_home else None,
        max_processes=settings.max_cli_processes,
        timeout=settings.cli_timeout_seconds,
    )


def create_app(settings: Settings | None = None, paseo: PaseoClient | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            await upgrade_to_head_async(settings.database_url)
        db = Database.from_url(settings.database_url)
        client = paseo or make_paseo_client(settings)
        turn_service = TurnService(
            db,
            client,
            TurnSettings(
                timeout_seconds=settings.turn_timeout_seconds,
                max_concurrent=settings.max_concurrent_turns,
                idle_timeout_seconds=settings.turn_idle_timeout_seconds,
                heartbeat_seconds=settings.turn_heartbeat_seconds,
                stale_seconds=settings.turn_stale_seconds,
                cancel_confirm_seconds=settings.cancel_confirm_seconds,
            ),
        )
        defaults = SessionDefaults(
            provider=settings.default_provider,
            model=settings.default_model,
            cwd=str(settings.default_cwd),
            max_prompt_bytes=settings.max_prompt_bytes,
        )
        app.state.settings = settings
        sessions_service = SessionService(db, client, turn_service, defaults)
        app.state.turns = turn_service
        app.state.sessions = sessions_service
        app.state.agents = AgentService(client)
        app.state.health = HealthService(db, client, settings.paseo_bin)
        turn_service.start_background()
        reconcile = asyncio.create_task(_reconcile_sessions(sessions_service))
        try:
            yield
        finally:
            reconcile.cancel()
            await asyncio.gather(reconcile, return_exceptions=True)
            await turn_service.aclose()
            await client.aclose()
            await db.dispose()

    app = FastAPI(
        title="Paseo Gateway",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(sessions.router)
    app.include_router(turns.router)
    app.include_router(agents.router)
    _register_problem_schema(app)
    return app


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


def _register_problem_schema(app: FastAPI) -> None:
    """Make `#/components/schemas/Problem` exist even if no route lists it as a model."""
    original = app.openapi

    def openapi() -> dict[str, object]:
        schema = original()
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {}).setdefault("Problem", Problem.model_json_schema())
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
