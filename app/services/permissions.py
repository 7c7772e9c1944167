"""Answering an agent's permission requests over HTTP (a person in the loop).

The answer is recorded before it goes to Paseo: a second answer to the same request, on any
replica, is refused, and the turn's `turn.permission_resolved` says who answered.
"""

from __future__ import annotations

import uuid

from app.db import Database
from app.errors import NoWaitingTurn, PermissionNotFound
from app.models import TurnStatus
from app.paseo.errors import PaseoError
from app.paseo.types import PermissionAnswer, PermissionRequest
from app.repositories import permissions as permissions_repo
from app.repositories import turns as turns_repo
from app.schemas import PermissionAnswered, PermissionAnswerIn
from app.services import audit
from app.services.access import get_visible_session
from app.services.auth import Principal
from app.services.daemons import Daemons


class PermissionService:
    def __init__(self, db: Database, daemons: Daemons) -> None:
        self.db = db
        self.daemons = daemons

    async def pending(
        self, session_id: uuid.UUID, principal: Principal | None
    ) -> list[PermissionRequest]:
        """What the session's agent waits for, as Paseo has it now (after a restart too)."""
        async with self.db.session() as session:
            record = await get_visible_session(session, session_id, principal)
        if record.agent_id is None:
            return []
        return await self.daemons.get(record.daemon).list_permissions(record.agent_id)

    async def answer(
        self,
        session_id: uuid.UUID,
        permission_id: str,
        body: PermissionAnswerIn,
        principal: Principal,
    ) -> PermissionAnswered:
        async with self.db.session() as session:
            record = await get_visible_session(session, session_id, principal)
            turn = await turns_repo.get_active_turn(session, session_id)
        # A running turn may have asked a moment ago: its status follows the stored event.
        if turn is None or turn.status == TurnStatus.QUEUED or not record.agent_id:
            raise NoWaitingTurn(
                f"session {session_id} has no turn waiting for a permission; "
                f"GET /sessions/{session_id}/permissions lists what its agent asks"
            )
        daemon = self.daemons.get(record.daemon)
        detail = await daemon.inspect_agent(record.agent_id)
        pending = {request.id for request in detail.pending_permissions}
        if permission_id not in pending:
            raise PermissionNotFound(_unknown(permission_id, pending))
        try:
            async with self.db.session() as session:
                await permissions_repo.record_answer(
                    session,
                    turn.id,
                    permission_id,
                    behavior=body.behavior,
                    message=body.message,
                    answered_by=principal.name,
                )
                await audit.record(
                    session,
                    "permission.answer",
                    session_id=session_id,
                    turn_id=turn.id,
                    target_id=permission_id,
                )
        except permissions_repo.AlreadyAnswered:
            raise PermissionNotFound(f"permission {permission_id} was answered already") from None
        answer = PermissionAnswer(body.behavior, message=body.message, interrupt=body.interrupt)
        try:
            await daemon.answer_permission(record.agent_id, permission_id, answer)
        except PaseoError:
            async with self.db.session() as session:  # Paseo has no answer: it may be given again
                await permissions_repo.forget_answer(session, turn.id, permission_id)
                await audit.withdraw(session)
            raise
        return PermissionAnswered(
            permission_id=permission_id, behavior=body.behavior, turn_id=turn.id
        )


def _unknown(permission_id: str, pending: set[str]) -> str:
    waiting = ", ".join(sorted(pending)) or "none"
    return f"no pending permission {permission_id!r} (pending now: {waiting})"
