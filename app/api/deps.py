"""`Annotated` dependency aliases: routes name what they need, the app state provides it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.services.agents import AgentService
from app.services.health import HealthService
from app.services.sessions import SessionService
from app.services.turns import TurnService
from app.settings import Settings


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


SettingsDep = Annotated[Settings, Depends(_settings)]
SessionsDep = Annotated[SessionService, Depends(_sessions)]
TurnsDep = Annotated[TurnService, Depends(_turns)]
AgentsDep = Annotated[AgentService, Depends(_agents)]
HealthDep = Annotated[HealthService, Depends(_health)]
