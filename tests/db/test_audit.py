"""The audit trail's records: written with their change, withdrawn with it, kept for the
retention, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from app.db import Database
from app.models import AuditRecord, utcnow
from app.repositories import audit as audit_repo
from app.services import audit


async def _actions(db: Database) -> list[str]:
    rows, total = await audit.list_records(db, audit_repo.AuditFilter(), limit=200, offset=0)
    assert total == len(rows)
    return sorted(row.action for row in rows)


async def test_a_record_commits_or_rolls_back_with_its_change(database: Database) -> None:
    token = audit.begin_request("req-1", "10.0.0.9")
    try:
        audit.caller_known(uuid.uuid4(), "ci")
        async with database.session() as session:
            await audit.record(session, "session.create", session_id=uuid.uuid4())
        with pytest.raises(RuntimeError):
            async with database.session() as session:
                await audit.record(session, "session.close")
                raise RuntimeError("the change failed")
    finally:
        audit.end_request(token)

    [row], _ = await audit.list_records(database, audit_repo.AuditFilter(), limit=10, offset=0)
    assert (row.action, row.outcome, row.request_id, row.client, row.key_name) == (
        "session.create",
        "ok",
        "req-1",
        "10.0.0.9",
        "ci",
    )


async def test_a_withdrawn_change_is_recorded_as_refused_instead(database: Database) -> None:
    token = audit.begin_request("req-2", None)
    try:
        audit.caller_known(None, "auth disabled")
        audit.declare_action("permission.answer")
        async with database.session() as session:
            await audit.record(session, "permission.answer", target_id="p1")
        async with database.session() as session:
            await audit.withdraw(session)
        await audit.record_refusal(database, "paseo_unavailable", session_id=None)
        await audit.record_refusal(database, "again", session_id=None)  # once only
    finally:
        audit.end_request(token)

    rows, _ = await audit.list_records(database, audit_repo.AuditFilter(), limit=10, offset=0)
    assert [(row.action, row.outcome) for row in rows] == [
        ("permission.answer", "paseo_unavailable")
    ]


async def test_a_request_whose_key_did_not_check_out_is_not_recorded(database: Database) -> None:
    token = audit.begin_request("req-3", None)
    try:
        audit.declare_action("session.create")
        await audit.record_refusal(database, "unauthorized", session_id=None)
    finally:
        audit.end_request(token)
    assert await _actions(database) == []


async def test_records_past_the_retention_are_pruned(database: Database) -> None:
    now = utcnow()
    async with database.session() as session:
        for days, action in ((0, "new"), (89, "kept"), (91, "old"), (400, "older")):
            row = AuditRecord(at=now - timedelta(days=days), action=action, outcome="ok")
            await audit_repo.add_record(session, row)

    assert await audit.prune(database, keep_days=90) == 2
    assert await _actions(database) == ["kept", "new"]
