"""Who may see what: a session belongs to the key that created it.

Another non-admin key is told the session does not exist (404, not 403), so ids cannot be
probed. Internal callers (recovery, background work) pass no principal and see everything.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import SessionNotFound
from app.models import GatewaySession
from app.repositories import sessions as sessions_repo
from app.services.auth import Principal


def can_see(record: GatewaySession, principal: Principal | None) -> bool:
    return principal is None or principal.is_admin or record.owner_key_id == principal.key_id


async def get_visible_session(
    session: AsyncSession, session_id: uuid.UUID, principal: Principal | None = None
) -> GatewaySession:
    """The session, or SessionNotFound if it does not exist or `principal` may not see it."""
    return visible(await sessions_repo.get_session(session, session_id), session_id, principal)


def visible(
    record: GatewaySession | None, session_id: uuid.UUID, principal: Principal | None
) -> GatewaySession:
    """`record` (the session `session_id`, read by the caller) if `principal` may see it,
    else SessionNotFound."""
    if record is None or not can_see(record, principal):
        raise SessionNotFound(f"no session {session_id}")
    return record


def owner_filter(principal: Principal | None) -> sessions_repo.OwnerFilter:
    """The `owner_key_id` filter for listings: none for admins and internal callers."""
    if principal is None or principal.is_admin:
        return sessions_repo.ANY_OWNER
    return principal.key_id
