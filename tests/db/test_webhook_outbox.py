"""The webhook outbox on SQLite and PostgreSQL: deliveries commit with their event, only the
webhooks that see a session hear it, and each attempt is claimed by one worker only."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database
from app.models import (
    ApiKey,
    DeliveryStatus,
    GatewaySession,
    SessionStatus,
    Turn,
    TurnEventRecord,
    TurnStatus,
    WebhookDelivery,
    utcnow,
)
from app.repositories import api_keys as keys_repo
from app.repositories import sessions as sessions_repo
from app.repositories import turn_events as events_repo
from app.repositories import turns as turns_repo
from app.repositories import webhooks as webhooks_repo


async def _key(db: Database, name: str) -> ApiKey:
    async with db.session() as session:
        return await keys_repo.add_key(
            session,
            name=name,
            prefix=name[:8],
            secret_hash=uuid.uuid4().hex * 2,
            scopes=["webhooks"],
        )


async def _webhook(
    db: Database, owner: ApiKey | None, *events: str, sees_all: bool = False
) -> uuid.UUID:
    async with db.session() as session:
        record = await webhooks_repo.add_webhook(
            session,
            owner_key_id=owner.id if owner else None,
            sees_all=sees_all,
            url="https://hooks.example.com/",
            secret="whsec_dGVzdA==",
            events=events,
        )
        return record.id


async def _session_and_turn(db: Database, owner: ApiKey | None) -> tuple[GatewaySession, Turn]:
    async with db.session() as session:
        record = await sessions_repo.add_session(
            session, provider="mock", cwd="/tmp", owner_key_id=owner.id if owner else None
        )
        turn = await turns_repo.add_turn(
            session, session_id=record.id, prompt="hi", status=TurnStatus.RUNNING
        )
        return record, turn


async def _deliveries(db: Database) -> list[WebhookDelivery]:
    async with db.read() as session:
        statement = select(WebhookDelivery).order_by(WebhookDelivery.created_at)
        return list((await session.scalars(statement)).all())


async def test_a_delivery_commits_with_its_event_or_not_at_all(database: Database) -> None:
    owner = await _key(database, "owner")
    webhook_id = await _webhook(database, owner, "turn.completed")
    _, turn = await _session_and_turn(database, owner)
    with pytest.raises(RuntimeError):
        async with database.session() as session:
            await events_repo.append_events(
                session, turn.id, [(1, "turn.completed", {"status": "completed"})]
            )
            assert len(await _deliveries_in(session)) == 1  # written with the event ...
            raise RuntimeError("the transaction fails")
    assert await _deliveries(database) == []  # ... and gone with it
    async with database.read() as session:
        assert await session.scalar(select(func.count(TurnEventRecord.id))) == 0
    async with database.session() as session:
        await events_repo.append_events(
            session,
            turn.id,
            [(1, "text", {"delta": "hi"}), (2, "turn.completed", {"status": "completed"})],
        )
    [delivery] = await _deliveries(database)
    assert (delivery.webhook_id, delivery.event, delivery.turn_id) == (
        webhook_id,
        "turn.completed",
        turn.id,
    )
    assert delivery.session_id == turn.session_id
    assert delivery.data == {"status": "completed"}
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 0)


async def _deliveries_in(session: AsyncSession) -> list[WebhookDelivery]:
    return list((await session.scalars(select(WebhookDelivery))).all())


async def test_only_webhooks_that_see_the_session_hear_its_events(database: Database) -> None:
    owner, other, revoked = [await _key(database, name) for name in ("owner", "other", "gone")]
    hearing = {
        await _webhook(database, owner, "turn.completed", "session.created"),
        await _webhook(database, None, "turn.completed", "session.created", sees_all=True),
    }
    await _webhook(database, other, "turn.completed", "session.created")  # not its session
    await _webhook(database, owner, "turn.failed")  # not that event
    await _webhook(database, revoked, "turn.completed", sees_all=True)  # its key is revoked
    disabled = await _webhook(database, owner, "turn.completed", "session.created")
    async with database.session() as session:
        await keys_repo.revoke_key(session, revoked.id)
        record = await webhooks_repo.get_webhook(session, disabled)
        assert record is not None
        await webhooks_repo.update_webhook(session, record, enabled=False)
    record, turn = await _session_and_turn(database, owner)
    async with database.session() as session:
        await events_repo.append_events(session, turn.id, [(1, "turn.completed", {})])
    heard = [(d.webhook_id, d.event) for d in await _deliveries(database)]
    assert sorted(heard) == sorted(
        [(webhook, event) for webhook in hearing for event in ("session.created", "turn.completed")]
    )


async def test_closing_a_session_is_announced_once(database: Database) -> None:
    webhook_id = await _webhook(database, None, "session.closed", sees_all=True)
    record, _ = await _session_and_turn(database, None)
    for _ in range(2):  # closing a closed session again is no new event
        async with database.session() as session:
            fresh = await sessions_repo.get_session(session, record.id)
            assert fresh is not None
            await sessions_repo.update_session(session, fresh, status=SessionStatus.CLOSED)
    [closed] = await _deliveries(database)
    assert (closed.webhook_id, closed.event, closed.session_id) == (
        webhook_id,
        "session.closed",
        record.id,
    )
    assert closed.data["status"] == "closed"


async def _pending(database: Database, count: int) -> set[uuid.UUID]:
    await _webhook(database, None, "session.created", sees_all=True)
    async with database.session() as session:
        for _ in range(count):
            await sessions_repo.add_session(session, provider="mock", cwd="/tmp")
    return {delivery.id for delivery in await _deliveries(database)}


async def test_concurrent_workers_never_claim_the_same_attempt(database: Database) -> None:
    everything = await _pending(database, 30)
    now = utcnow()

    async def worker() -> list[uuid.UUID]:
        taken: list[uuid.UUID] = []
        while True:
            async with database.session() as session:
                claimed = await webhooks_repo.claim_due(
                    session, now=now, lease_until=now + timedelta(minutes=1), limit=4
                )
            if not claimed:
                return taken
            taken += [one.delivery.id for one in claimed]
            assert all(one.delivery.attempts == 1 for one in claimed)

    results = await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(4))), 120)
    taken = [delivery_id for result in results for delivery_id in result]
    assert sorted(taken) == sorted(everything)  # each once, none left out
    assert {d.status for d in await _deliveries(database)} == {DeliveryStatus.SENDING}


async def test_a_claim_whose_lease_ran_out_is_taken_again_and_its_late_result_dropped(
    database: Database,
) -> None:
    [delivery_id] = await _pending(database, 1)
    now = utcnow()
    async with database.session() as session:
        [first] = await webhooks_repo.claim_due(session, now=now, lease_until=now, limit=5)
    later = now + timedelta(seconds=1)
    async with database.session() as session:
        [second] = await webhooks_repo.claim_due(
            session, now=later, lease_until=later + timedelta(minutes=1), limit=5
        )
    assert (first.delivery.id, second.delivery.id) == (delivery_id, delivery_id)
    assert (first.delivery.attempts, second.delivery.attempts) == (1, 2)
    async with database.session() as session:
        late = await webhooks_repo.record_attempt(
            session,
            delivery_id,
            1,
            status=DeliveryStatus.DELIVERED,
            next_attempt_at=later,
            status_code=200,
            error=None,
            delivered_at=later,
        )
        current = await webhooks_repo.record_attempt(
            session,
            delivery_id,
            2,
            status=DeliveryStatus.PENDING,
            next_attempt_at=later,
            status_code=500,
            error="HTTP 500",
        )
    assert (late, current) == (False, True)
    [delivery] = await _deliveries(database)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        DeliveryStatus.PENDING,
        2,
        500,
    )


async def test_a_disabled_webhook_s_deliveries_wait(database: Database) -> None:
    await _pending(database, 2)
    [delivery, _] = await _deliveries(database)
    async with database.session() as session:
        await webhooks_repo.disable_webhook(session, delivery.webhook_id, "receiver gone")
        now = utcnow()
        assert await webhooks_repo.claim_due(session, now=now, lease_until=now, limit=5) == []
        assert await webhooks_repo.oldest_due(session, now) is None
