"""Budgets per API key: which limits there are, the UTC windows they count in, and whether a
prompt may go. Pure functions; the caller reads what the key used, under the key row's lock,
in the transaction that admits the prompt (app/services/turn/service.py).

A turn counts in the window it started in. Its tokens and cost are known only when it ends,
so a running turn is never cut off: what it used counts from then on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.repositories.usage import Used

# Each limit and what it counts; a day is a UTC day, a month a UTC calendar month.
LIMITS: dict[str, str] = {
    "cost_usd_per_day": "US dollars of today's turns",
    "cost_usd_per_month": "US dollars of this month's turns",
    "output_tokens_per_day": "output tokens of today's turns",
    "turns_per_day": "turns started today",
}


@dataclass(frozen=True)
class Windows:
    """The UTC day and month `now` falls in: [start, end)."""

    day_start: datetime
    day_end: datetime
    month_start: datetime
    month_end: datetime


@dataclass(frozen=True)
class Exceeded:
    """The first limit a prompt would go past: its name, amount, what was used, and when its
    window resets."""

    limit: str
    amount: float
    used: float
    resets_at: datetime

    def retry_after(self, now: datetime) -> int:
        """Whole seconds until the window resets (at least 1), for `Retry-After`."""
        return max(1, int((self.resets_at - now).total_seconds() + 0.999))


def windows(now: datetime) -> Windows:
    day_start = datetime(now.year, now.month, now.day, tzinfo=UTC)
    month_start = datetime(now.year, now.month, 1, tzinfo=UTC)
    next_month = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    return Windows(day_start, day_start + timedelta(days=1), month_start, next_month)


def check_budget(limits: Mapping[str, float], used: Used, now: datetime) -> Exceeded | None:
    """The first limit reached (a prompt needs something left of each), or None: it may go."""
    window = windows(now.astimezone(UTC))
    counted = {
        "turns_per_day": (used.turns_today, window.day_end),
        "output_tokens_per_day": (used.output_tokens_today, window.day_end),
        "cost_usd_per_day": (used.cost_usd_today, window.day_end),
        "cost_usd_per_month": (used.cost_usd_month, window.month_end),
    }
    for name, (spent, resets_at) in counted.items():
        amount = limits.get(name)
        if amount is not None and spent >= amount:
            return Exceeded(name, amount, spent, resets_at)
    return None


def exceeded_detail(exceeded: Exceeded) -> str:
    """What the refusal says: the limit, its amount, what was used, and when it resets."""
    return (
        f"this key's {exceeded.limit} limit is {_amount(exceeded.amount)} and its "
        f"{LIMITS[exceeded.limit]} came to {_amount(exceeded.used)}; "
        f"it resets at {exceeded.resets_at.isoformat()}"
    )


def _amount(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
