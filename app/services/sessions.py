"""Gateway sessions: one Paseo agent each, with the mapping kept in the database.

No database transaction is held open across a paseo call (each costs over a second): read,
call Paseo, then write in a second short transaction.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database
from app.errors import (
    GatewayError,
    InvalidInput,
    ModelNotFound,
    PayloadTooLarge,
    SessionClosed,
    SessionExists,
    from_paseo,
)
from app.models import GatewaySession, SessionStatus, Turn
from app.paseo.daemons import Daemon
from app.paseo.errors import PaseoError, PaseoErrorKind
from app.paseo.prompts import js_trim
from app.repositories import sessions as sessions_repo
from app.repositories import turns as turns_repo
from app.repositories.sessions import SessionChanges
from app.schemas import (
    LABEL_FILTER_KEY_PATTERN,
    LABEL_VALUE_MAX_CHARS,
    LABEL_VALUE_PATTERN,
    MAX_LABELS,
    AgentLiveStatus,
    SessionCreate,
    SessionImport,
    SessionUpdate,
)
from app.services import audit
from app.services.access import get_visible_session, owner_filter
from app.services.auth import Principal
from app.services.daemons import Daemons
from app.services.placement import Candidate, place
from app.services.prompt_media import check_first_media
from app.services.providers import Catalogs, ProviderCatalog, refuse_mode
from app.services.turn.run import SESSION_LABEL
from app.services.turn.service import TurnService, check_first_prompt
from app.services.workspaces import confine, inside_roots, require_directory

logger = logging.getLogger(__name__)

# How long one `inspect` answers `GET /sessions/{id}` for every reader of that session.
AGENT_STATUS_FRESH_SECONDS = 2.0


@dataclass
class SessionDefaults:
    provider: str
    model: str | None
    cwd: str
    max_prompt_bytes: int


@dataclass(frozen=True)
class SessionActivity:
    """What `GET /sessions/{id}` shows besides Paseo's live status, read together."""

    record: GatewaySession
    active_turn: Turn | None
    usage: turns_repo.UsageTotals


class SessionService:
    """Each session lives on one daemon, fixed when it is made: every call about it goes to
    that daemon."""

    def __init__(
        self, db: Database, daemons: Daemons, turns: TurnService, defaults: SessionDefaults
    ) -> None:
        self.db = db
        self.daemons = daemons
        self.turns = turns
        self.defaults = defaults
        self.providers = Catalogs(daemons)
        # agent id -> (its last live status, when it was read); one reader asks at a time.
        self._inspected: dict[str, tuple[AgentLiveStatus, float]] = {}
        self._inspecting: dict[str, asyncio.Lock] = {}

    async def create(
        self, request: SessionCreate, principal: Principal, *, openai_model: bool = False
    ) -> tuple[GatewaySession, Turn | None]:
        """A pending session; with a first prompt its agent is created and the turn starts.

        Everything that can refuse the request is checked before the session is stored, so a
        refused request leaves nothing behind (one request, one outcome): the folder, and the
        provider, model and mode against what the session's daemon lists. `openai_model`: a
        provider or model that is not there is OpenAI's 404 `model_not_found`, not a 422.
        """
        media = check_first_media(
            request.prompt, request.images, request.attachments, self.defaults.max_prompt_bytes
        )
        if request.prompt is not None:
            check_prompt(request.prompt, self.defaults.max_prompt_bytes)
            check_first_prompt(request.prompt, self.turns.settings.max_first_prompt_bytes)
            self.turns.check_media(media)
            await self.turns.check_budget(principal)
        daemon, cwd = await self._place(request.daemon, request.cwd or self.defaults.cwd)
        provider = request.provider or self.defaults.provider
        model = request.model or (None if request.provider else self.defaults.model)
        await self._check_choice(
            self.providers.of(daemon.name), provider, request, openai_model=openai_model
        )
        async with self.db.session() as session:
            record = await sessions_repo.add_session(
                session,
                provider=provider,
                model=model,
                mode=request.mode,
                title=request.title,
                cwd=cwd,
                labels=dict(request.labels),
                owner_key_id=principal.key_id,
                daemon=daemon.name,
            )
            await audit.record(session, "session.create", session_id=record.id)
        if request.prompt is None:
            return record, None
        try:
            turn, _ = await self.turns.start_turn(record.id, request.prompt, principal, media=media)
        except (GatewayError, PaseoError) as exc:
            # The session exists even though its first turn did not start: say which it is.
            error = exc if isinstance(exc, GatewayError) else from_paseo(exc)
            error.extra["session_id"] = str(record.id)
            raise error from exc
        return await self.get(record.id, principal), turn

    async def _place(self, named: str | None, cwd: str) -> tuple[Daemon, str]:
        """The new session's daemon (the one named, the only one, or the placement policy's)
        and its folder, resolved (symlinks followed) and inside that daemon's roots."""
        if named is None and len(self.daemons.names) == 1:
            named = self.daemons.names[0]
        if named is None:
            async with self.db.session() as session:
                active = await sessions_repo.active_turns_by_daemon(session)
            candidates = [
                Candidate(
                    daemon.name,
                    up=self.daemons.state(daemon.name) != "down",  # degraded: placeable
                    holds_cwd=inside_roots(cwd, daemon.workspace_roots),
                    active_turns=active.get(daemon.name, 0),
                )
                for daemon in self.daemons
            ]
            named = place(candidates, cwd)
        daemon = self.daemons.get(named)
        resolved = confine(cwd, daemon.workspace_roots)
        require_directory(resolved, daemon.workspace_roots)
        return daemon, resolved

    @staticmethod
    async def _check_choice(
        catalog: ProviderCatalog, provider: str, request: SessionCreate, *, openai_model: bool
    ) -> None:
        """The provider must run agents on the daemon, and a model or mode the client names
        must be one it lists (the server's default model is the operator's: not checked)."""
        try:
            if request.model is None:
                await catalog.check(provider)
            else:
                await catalog.check_model(provider, request.model)
        except InvalidInput as exc:
            if not openai_model:
                raise
            raise _openai_model_error(exc, provider, request.model) from None
        if request.mode is not None:
            await catalog.check_mode(provider, request.mode)

    def _daemon_of(self, record: GatewaySession) -> Daemon:
        return self.daemons.get(record.daemon)

    async def import_session(self, request: SessionImport, principal: Principal) -> GatewaySession:
        """Register an existing provider session: `paseo import`, labelled with our id."""
        session_id = uuid.uuid4()
        daemon, cwd = await self._place(request.daemon, request.cwd or self.defaults.cwd)
        created = await daemon.import_agent(
            provider=request.provider,
            session_id=request.provider_session_id,
            cwd=cwd,
            labels={**request.labels, SESSION_LABEL: str(session_id)},
        )
        async with self.db.session() as session:
            existing = await sessions_repo.get_session_by_agent_id(session, created.agent_id)
            if existing is not None:
                raise SessionExists(
                    f"that provider session is already gateway session {existing.id}",
                    session_id=str(existing.id),
                )
            await audit.record(session, "session.import", session_id=session_id)
            return await sessions_repo.add_session(
                session,
                id=session_id,
                agent_id=created.agent_id,
                provider=created.provider,
                model=None,
                mode=None,
                title=request.title or created.title,
                cwd=created.cwd,
                labels=dict(request.labels),
                status=SessionStatus.ACTIVE,
                owner_key_id=principal.key_id,
                daemon=daemon.name,
            )

    async def get(self, session_id: uuid.UUID, principal: Principal | None) -> GatewaySession:
        async with self.db.session() as session:
            return await get_visible_session(session, session_id, principal)

    async def get_with_activity(
        self, session_id: uuid.UUID, principal: Principal | None
    ) -> SessionActivity:
        """The session, its active turn and its usage so far, read in one unit (no Paseo call
        holds its connection: the caller asks Paseo afterwards)."""
        async with self.db.read() as session:
            record = await get_visible_session(session, session_id, principal)
            active = await turns_repo.get_active_turn(session, session_id)
            usage = await turns_repo.usage_totals(session, session_id)
        return SessionActivity(record, active, usage)

    async def live_status(self, record: GatewaySession) -> AgentLiveStatus | None:
        """What Paseo said of the agent at most AGENT_STATUS_FRESH_SECONDS ago (with its age):
        a CLI call costs seconds, so readers of one session share one.

        A Paseo failure is reported, not raised; an agent archived or deleted outside the
        gateway marks its session so.
        """
        if record.agent_id is None:
            return None
        async with self._inspecting.setdefault(record.agent_id, asyncio.Lock()):
            known = self._inspected.get(record.agent_id)
            if known is None or time.monotonic() - known[1] > AGENT_STATUS_FRESH_SECONDS:
                known = (await self._inspect(record), time.monotonic())
                self._inspected[record.agent_id] = known
        status, at = known
        return status.model_copy(update={"age_seconds": round(time.monotonic() - at, 1)})

    async def _inspect(self, record: GatewaySession) -> AgentLiveStatus:
        assert record.agent_id is not None
        try:
            detail = await self._daemon_of(record).inspect_agent(record.agent_id)
        except PaseoError as exc:
            missing = exc.kind == PaseoErrorKind.NOT_FOUND
            if missing:
                await self._set_status(record, SessionStatus.AGENT_MISSING)
            return AgentLiveStatus(
                status="missing" if missing else None, error=f"{exc.code}: {exc.message}"
            )
        if detail.archived and record.status == SessionStatus.ACTIVE:
            await self._set_status(record, SessionStatus.AGENT_ARCHIVED)
        return AgentLiveStatus(
            status=detail.status,
            archived=detail.archived,
            pending_permissions=[p.model_dump() for p in detail.pending_permissions],
        )

    async def reconcile_agents(self) -> int:
        """Mark sessions whose agents were archived or deleted outside the gateway.

        Per daemon, two `ls` calls cover every agent with a workspace; only agents neither
        shows are inspected one by one. A daemon that does not answer is left for the next
        start. Returns how many sessions changed.
        """
        async with self.db.session() as session:
            active, _ = await sessions_repo.list_sessions(
                session, status=SessionStatus.ACTIVE, limit=10_000
            )
        changed = 0
        for daemon in self.daemons:
            mine = [record for record in active if record.daemon == daemon.name]
            if not mine:
                continue
            try:
                changed += await self._reconcile_on(daemon, mine)
            except PaseoError as exc:
                logger.warning("could not check the agents on daemon %s: %s", daemon.name, exc)
        return changed

    async def _reconcile_on(self, daemon: Daemon, records: list[GatewaySession]) -> int:
        live = {agent.id for agent in await daemon.list_agents()}
        known = {agent.id for agent in await daemon.list_agents(include_archived=True)}
        changed = 0
        for record in records:
            if record.agent_id is None or record.agent_id in live:
                continue
            before = record.status
            if record.agent_id in known:
                await self._set_status(record, SessionStatus.AGENT_ARCHIVED)
            else:
                await self.live_status(record)
            changed += record.status != before
        return changed

    async def _set_status(self, record: GatewaySession, status: SessionStatus) -> None:
        async with self.db.session() as session:
            await sessions_repo.update_session(session, record, status=status)

    async def list_sessions(
        self,
        principal: Principal,
        reads: AsyncSession,
        *,
        status: str | None,
        labels: dict[str, str],
        limit: int,
        offset: int,
    ) -> tuple[list[GatewaySession], int]:
        """One page of what `principal` may see, read in the route's read session."""
        return await sessions_repo.list_sessions(
            reads,
            status=status,
            labels=labels,
            limit=limit,
            offset=offset,
            owner_key_id=owner_filter(principal),
        )

    async def update(
        self, session_id: uuid.UUID, request: SessionUpdate, principal: Principal
    ) -> GatewaySession:
        """Rename, relabel or switch the mode of a session, and of its agent if it has one
        (Paseo first: a refusal there changes nothing here)."""
        record = await self.get(session_id, principal)
        if record.status in (SessionStatus.CLOSED, SessionStatus.AGENT_MISSING):
            raise SessionClosed(f"session {session_id} is {record.status}; nothing to change")
        if record.agent_id is not None:
            await self._steer_agent(self._daemon_of(record), record.agent_id, request)
        elif request.mode is not None:  # kept for the agent its first prompt creates
            await self.providers.of(record.daemon).check_mode(record.provider, request.mode)
        changes: SessionChanges = {}
        if request.title is not None:
            changes["title"] = request.title
        if request.mode is not None:
            changes["mode"] = request.mode
        async with self.db.session() as session:
            fresh = await get_visible_session(session, session_id)
            if request.labels:
                changes["labels"] = {**fresh.labels, **request.labels}
            await audit.record(session, "session.update", session_id=session_id)
            return await sessions_repo.update_session(session, fresh, **changes)

    async def _steer_agent(self, daemon: Daemon, agent_id: str, request: SessionUpdate) -> None:
        if request.mode is not None:
            detail = await daemon.inspect_agent(agent_id)
            offered = [(mode.id, mode.label) for mode in detail.available_modes]
            if offered:
                refuse_mode(request.mode, offered, "this agent")
        if request.title is not None or request.labels:
            await daemon.update_agent(agent_id, title=request.title, labels=request.labels)
        if request.mode is not None:
            await daemon.set_agent_mode(agent_id, request.mode)

    async def close(
        self, session_id: uuid.UUID, principal: Principal, *, force: bool
    ) -> GatewaySession:
        """Archive the agent (Paseo's soft delete) and mark the session closed."""
        record = await self.get(session_id, principal)
        if record.status == SessionStatus.CLOSED:
            return record
        if force:
            # Archiving with force interrupts a running turn: it ends as cancelled.
            await self.turns.request_cancel(session_id)
        if record.agent_id is not None:
            await self._archive(self._daemon_of(record), record.agent_id, force=force)
        async with self.db.session() as session:
            fresh = await get_visible_session(session, session_id)
            await audit.record(session, "session.close", session_id=session_id)
            return await sessions_repo.update_session(session, fresh, status=SessionStatus.CLOSED)

    async def _archive(self, daemon: Daemon, agent_id: str, *, force: bool) -> None:
        try:
            await daemon.archive_agent(agent_id, force=force)
        except PaseoError as exc:
            # Already archived, or gone from Paseo: either way the session can close.
            if exc.code != "AGENT_ALREADY_ARCHIVED" and exc.kind != PaseoErrorKind.NOT_FOUND:
                raise


def _openai_model_error(refused: InvalidInput, provider: str, model: str | None) -> ModelNotFound:
    """A provider or model refused, as OpenAI says it: 404 `model_not_found`, naming the
    choices as `GET /v1/models` lists them (`provider/model`)."""
    named = f"{provider}/{model}" if model else provider
    models = refused.extra.get("models")
    if models is None:
        return ModelNotFound(f"no model {named!r}: {refused.detail}", field="model")
    offered = ", ".join(f"{provider}/{known}" for known in models) or "none"
    return ModelNotFound(f"no model {named!r}; {provider} offers: {offered}", field="model")


def check_prompt(prompt: str, max_bytes: int) -> None:
    """Prompts are data of any content, but not empty and not larger than configured."""
    if not prompt.strip() or not js_trim(prompt):
        raise InvalidInput("prompt must contain some non-whitespace text", field="prompt")
    size = len(prompt.encode("utf-8"))
    if size > max_bytes:
        raise PayloadTooLarge(
            f"prompt is {size} bytes; the limit is {max_bytes} (PASEO_GATEWAY_MAX_PROMPT_BYTES)"
        )


def session_labels(pairs: list[str]) -> dict[str, str]:
    """`key=value` query parameters as a dict, held to the rules of labels in bodies (the key
    may name a reserved label too): anything else is a client error that says what to fix."""
    if len(pairs) > MAX_LABELS:
        raise InvalidInput(f"at most {MAX_LABELS} label filters, not {len(pairs)}", field="label")
    labels: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"label filter {pair!r} must look like key=value", field="label")
        if not re.fullmatch(LABEL_FILTER_KEY_PATTERN, key):
            raise InvalidInput(
                f"label filter key {key!r} must match {LABEL_FILTER_KEY_PATTERN}: a letter or "
                "digit, then up to 62 letters, digits, '_', '.' or '-'",
                field="label",
            )
        if len(value) > LABEL_VALUE_MAX_CHARS or not re.fullmatch(LABEL_VALUE_PATTERN, value):
            raise InvalidInput(
                f"label filter value for {key!r} must be at most {LABEL_VALUE_MAX_CHARS} "
                "characters without NUL, line breaks or commas",
                field="label",
            )
        labels[key] = value
    return labels
