"""The outbox's worker: every gateway process runs one, and any of them may send a delivery.

It claims due deliveries (each claim is one attempt, taken by one process: see
app/repositories/webhooks.py), sends them, and records how each went as `after_attempt`
decides. A process killed mid-attempt leaves its claims to run out; another process (or this
one, restarted) then takes them, with the same `webhook-id`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta

from app.aio import cancel_and_wait
from app.db import Database
from app.metrics import WEBHOOK_DELIVERIES, WEBHOOK_QUEUE_AGE
from app.models import DeliveryStatus, utcnow
from app.repositories import webhooks as webhooks_repo
from app.services.webhooks import messages
from app.services.webhooks.decisions import Attempt, Delivered, GiveUp, Next, after_attempt
from app.services.webhooks.sender import WebhookSender

logger = logging.getLogger(__name__)

# Claims per round, and attempts in flight at once, per process.
CLAIM_BATCH = 16
# A claim outlives the longest attempt (connect, then reads, each within the timeout) by this.
LEASE_MARGIN_SECONDS = 30.0
# After a database error, wait this long before looking again.
ERROR_PAUSE_SECONDS = 5.0


class WebhookDispatcher:
    def __init__(
        self,
        db: Database,
        sender: WebhookSender,
        *,
        schedule: Sequence[float],
        poll_seconds: float,
    ) -> None:
        self.db = db
        self.sender = sender
        self.schedule = tuple(schedule)
        self.poll_seconds = poll_seconds
        self.lease_seconds = sender.policy.timeout_seconds * 2 + LEASE_MARGIN_SECONDS
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhook-dispatcher")

    async def aclose(self) -> None:
        """Stop claiming; attempts in flight are cancelled (their claims run out and another
        round sends them again)."""
        if self._task is not None:
            await cancel_and_wait(self._task)
        await self.sender.aclose()

    async def _run(self) -> None:
        while True:
            try:
                sent = await self.run_once()
            except Exception:
                logger.exception("webhook deliveries: a round failed; trying again")
                await asyncio.sleep(ERROR_PAUSE_SECONDS)
                continue
            if sent < CLAIM_BATCH:
                await asyncio.sleep(self.poll_seconds)

    async def run_once(self) -> int:
        """Claim what is due, send it all, record each result; returns how many were sent.

        A read looks first, so a quiet round writes nothing (on SQLite a claim, even of
        nothing, would take the one write lock).
        """
        now = utcnow()
        async with self.db.read() as session:
            oldest = await webhooks_repo.oldest_due(session, now)
        WEBHOOK_QUEUE_AGE.set(0 if oldest is None else max(0.0, (now - oldest).total_seconds()))
        if oldest is None:
            return 0
        async with self.db.session() as session:
            claimed = await webhooks_repo.claim_due(
                session,
                now=now,
                lease_until=now + timedelta(seconds=self.lease_seconds),
                limit=CLAIM_BATCH,
            )
        if claimed:
            await asyncio.gather(*(self._attempt(one) for one in claimed))
        return len(claimed)

    async def _attempt(self, claimed: webhooks_repo.Claimed) -> None:
        delivery = claimed.delivery
        content = messages.body(
            delivery.event,
            delivery.occurred_at,
            delivery.data,
            delivery.session_id,
            delivery.turn_id,
        )
        msg_id = messages.message_id(delivery.id)
        headers = messages.signed_headers(claimed.secret, msg_id, utcnow(), content)
        attempt = await self.sender.send(claimed.url, content, headers)
        step = after_attempt(delivery.attempts, attempt, self.schedule)
        WEBHOOK_DELIVERIES.labels(outcome=_outcome(step)).inc()
        await self._record(claimed, attempt, step)

    async def _record(self, claimed: webhooks_repo.Claimed, attempt: Attempt, step: Next) -> None:
        delivery = claimed.delivery
        now = utcnow()
        status, next_at, delivered_at = DeliveryStatus.PENDING, now, None
        if isinstance(step, Delivered):
            status, delivered_at = DeliveryStatus.DELIVERED, now
        elif isinstance(step, GiveUp):
            status = DeliveryStatus.FAILED
        else:
            next_at = now + timedelta(seconds=step.seconds)
        error = attempt.error if not isinstance(step, GiveUp) else _joined(attempt.error, step)
        async with self.db.session() as session:
            recorded = await webhooks_repo.record_attempt(
                session,
                delivery.id,
                delivery.attempts,
                status=status,
                next_attempt_at=next_at,
                status_code=attempt.status_code,
                error=error,
                delivered_at=delivered_at,
            )
            if recorded and isinstance(step, GiveUp) and step.disable:
                await webhooks_repo.disable_webhook(session, delivery.webhook_id, step.reason)
        if not recorded:
            logger.warning(
                "webhook delivery %s: attempt %d ended after its claim ran out; not recorded",
                delivery.id,
                delivery.attempts,
            )


def _outcome(step: Next) -> str:
    if isinstance(step, Delivered):
        return "delivered"
    if isinstance(step, GiveUp):
        return "disabled" if step.disable else "failed"
    return "retrying"


def _joined(error: str | None, step: GiveUp) -> str:
    return f"{error}; {step.reason}" if error else step.reason
