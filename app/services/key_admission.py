"""Whether a key may send one more prompt now: its budget, then its rate limit.

Taken in one place, inside the caller's transaction and under the key row's lock: the
transaction that stores the prompt's turn, so two prompts at the same instant, in any
process, are counted one after the other and never both take the last place. A refusal
raises, and the caller's transaction stores nothing.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import BudgetExceeded, RateLimited, Unauthorized
from app.repositories import rate_limits as rate_repo
from app.repositories import usage as usage_repo
from app.services.budgets import check_budget, exceeded_detail, windows

RATE_WINDOW_SECONDS = 60.0


async def admit_key(
    session: AsyncSession, key_id: uuid.UUID, *, rate_per_minute: int, now: datetime
) -> None:
    """Raise BudgetExceeded or RateLimited (429, with Retry-After) if the key may not send a
    prompt now; else record it for the rate limit. Unauthorized if the key is gone."""
    try:
        limits = await usage_repo.lock_key_limits(session, key_id)
        if limits:
            await _check_budget(session, key_id, limits, now)
        if rate_per_minute > 0:
            await _check_rate(session, key_id, rate_per_minute, now)
    except rate_repo.UnknownKey:
        raise Unauthorized("the API key is unknown or revoked", invalid_token=True) from None


async def check_budget_left(session: AsyncSession, key_id: uuid.UUID, *, now: datetime) -> None:
    """Raise BudgetExceeded if the key's budget is used up now, without locking or recording
    anything: for a request that would store something else first (a session made with its
    first prompt), so it is refused before anything is stored. `admit_key` decides later."""
    key_limits = await usage_repo.key_limits(session, key_id)
    if key_limits:
        await _check_budget(session, key_id, key_limits, now)


async def _check_budget(
    session: AsyncSession, key_id: uuid.UUID, limits: dict[str, float], now: datetime
) -> None:
    window = windows(now)
    used = await usage_repo.key_used(
        session, key_id, day_start=window.day_start, month_start=window.month_start
    )
    exceeded = check_budget(limits, used, now)
    if exceeded is not None:
        raise BudgetExceeded(
            exceeded_detail(exceeded),
            headers={"Retry-After": str(exceeded.retry_after(now))},
            limit=exceeded.limit,
            amount=exceeded.amount,
            used=exceeded.used,
            resets_at=exceeded.resets_at.isoformat(),
        )


async def _check_rate(session: AsyncSession, key_id: uuid.UUID, limit: int, now: datetime) -> None:
    """Count and record the prompt for the rate limit, under the key row's lock (taken)."""
    since = now - timedelta(seconds=RATE_WINDOW_SECONDS)
    admission = await rate_repo.admit_prompt(
        session, key_id, limit=limit, since=since, now=now, key_locked=True
    )
    if not admission.admitted and admission.earliest is not None:
        wait = RATE_WINDOW_SECONDS - (now - admission.earliest).total_seconds()
        raise RateLimited(
            f"this key sent {admission.count} prompts in the last minute; the limit is {limit}",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
