"""What turns used, for `/usage` and the page: a key sees its own, an admin key everyone's."""

from __future__ import annotations

from datetime import datetime

from app.db import Database
from app.errors import InvalidInput
from app.repositories import usage as usage_repo
from app.repositories.sessions import ANY_OWNER
from app.repositories.usage import GroupBy, UsageRow
from app.services.auth import Principal


class UsageService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def usage(
        self,
        principal: Principal,
        group_by: GroupBy,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[UsageRow]:
        """Sums of the turns started in [since, until): the principal's own turns (those its
        key sent), every turn for an admin key."""
        if since is not None and until is not None and since >= until:
            raise InvalidInput(f"`from` ({since.isoformat()}) must be before `to`", field="from")
        key_id = ANY_OWNER if principal.is_admin else principal.key_id
        async with self.db.read() as session:
            return await usage_repo.usage_by(
                session, group_by, since=since, until=until, key_id=key_id
            )
