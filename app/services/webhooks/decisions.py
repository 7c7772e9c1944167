"""What an attempt's answer means for its delivery: pure functions, tested on their own.

The retry schedule is Standard Webhooks' (the one Svix publishes): after the first attempt,
wait 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h, so the last of 8 attempts comes about 27.5
hours after the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (5, 300, 1_800, 7_200, 18_000, 36_000, 36_000)
# A 410 says the receiver is gone for good: the webhook is switched off, not retried.
GONE = 410


@dataclass(frozen=True)
class Attempt:
    """How one attempt went: the receiver's status, or why there was none."""

    status_code: int | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class Delivered:
    pass


@dataclass(frozen=True)
class RetryIn:
    seconds: float


@dataclass(frozen=True)
class GiveUp:
    """No attempt is left; with `disable`, the webhook is switched off too (410)."""

    reason: str
    disable: bool = False


Next = Delivered | RetryIn | GiveUp


def after_attempt(attempts: int, attempt: Attempt, schedule: Sequence[float]) -> Next:
    """What follows attempt number `attempts` (1 for the first): a 2xx ends the delivery, a
    410 ends it and the webhook, anything else waits for the next step of `schedule` until
    it runs out."""
    if attempts < 1:
        raise ValueError(f"attempts count from 1, not {attempts}")
    if attempt.succeeded:
        return Delivered()
    if attempt.status_code == GONE:
        return GiveUp("the receiver answered 410 Gone: the webhook is disabled", disable=True)
    if attempts > len(schedule):
        return GiveUp(f"no answer in 2xx after {attempts} attempts")
    return RetryIn(schedule[attempts - 1])


def parse_schedule(text: str) -> tuple[float, ...]:
    """`5,300,1800`: seconds to wait before each retry, in order; at least one, none negative."""
    try:
        steps = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"a retry schedule is seconds separated by commas, not {text!r}") from None
    if not steps or any(step < 0 for step in steps):
        raise ValueError(f"a retry schedule needs one or more seconds, none negative: {text!r}")
    return steps
