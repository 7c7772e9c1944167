"""What a plain read costs the database: `GET /sessions` and `GET /sessions/{id}/turns` use
one pooled connection for the key lookup and the page, and one statement for the page and its
total; a key seen a moment ago costs no statement (the gateway in-process, on SQLite and
PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from app.db import Database
from app.main import create_app
from app.models import TurnStatus
from app.repositories import sessions as sessions_repo
from app.repositories import turns as turns_repo
from app.services.auth import AuthService
from app.settings import Settings

KEY = "pgw_read-routes-test-key-000000000000000000"
READER = "pgw_read-routes-reader-000000000000000000"


@dataclass
class DatabaseTraffic:
    """Pool checkouts and SQL statements seen on an engine since the last `reset`."""

    checkouts: int = 0
    statements: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.checkouts = 0
        self.statements.clear()


@dataclass
class App:
    client: httpx.AsyncClient
    db: Database
    traffic: DatabaseTraffic


# Long enough that a key seen in a test is still trusted when the test asks again.
TRUSTED_FOR_THE_TEST = 60.0


@pytest.fixture
async def app(database: Database, tmp_path: Path) -> AsyncIterator[App]:
    """The gateway on the suite's migrated database (emptied afterwards by `database`)."""
    async with _gateway(database, tmp_path, key_cache_seconds=TRUSTED_FOR_THE_TEST) as app:
        yield app


@asynccontextmanager
async def _gateway(
    database: Database, tmp_path: Path, *, key_cache_seconds: float
) -> AsyncIterator[App]:
    url = database.engine.url.render_as_string(hide_password=False)
    settings = Settings(
        database_url=url,
        admin_key=KEY,
        paseo_bin=str(tmp_path / "no-paseo"),
        default_cwd=tmp_path,
        key_cache_seconds=key_cache_seconds,
    )
    gateway = create_app(settings)
    async with gateway.router.lifespan_context(gateway):
        db: Database = gateway.state.db
        traffic = DatabaseTraffic()
        engine = db.engine.sync_engine

        def on_checkout(*_: Any) -> None:
            traffic.checkouts += 1

        def on_statement(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            traffic.statements.append(statement)

        event.listen(engine, "checkout", on_checkout)
        event.listen(engine, "before_cursor_execute", on_statement)
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield App(client, db, traffic)


async def _add_sessions(db: Database, count: int) -> list[uuid.UUID]:
    async with db.session() as session:
        records = [
            await sessions_repo.add_session(session, provider="mock", cwd="/tmp", status="idle")
            for _ in range(count)
        ]
    return [record.id for record in records]


def _auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_listing_sessions_takes_one_connection_and_one_statement_for_the_page(
    app: App,
) -> None:
    await _add_sessions(app.db, 3)
    app.traffic.reset()

    answer = await app.client.get("/sessions", params={"limit": 2}, headers=_auth())

    assert answer.status_code == 200, answer.text
    page = answer.json()
    assert (len(page["items"]), page["total"]) == (2, 3)
    assert app.traffic.checkouts == 1
    # The key lookup, then the page carrying its own total.
    assert len(app.traffic.statements) == 2, app.traffic.statements

    app.traffic.reset()
    again = await app.client.get("/sessions", params={"limit": 2}, headers=_auth())

    assert again.json() == page
    # The key was just seen: only the page.
    assert len(app.traffic.statements) == 1, app.traffic.statements


async def test_a_page_past_the_end_still_says_how_many_there_are(app: App) -> None:
    await _add_sessions(app.db, 3)

    answer = await app.client.get("/sessions", params={"offset": 5}, headers=_auth())

    assert answer.status_code == 200, answer.text
    assert answer.json()["items"] == [] and answer.json()["total"] == 3


async def test_listing_turns_takes_one_connection(app: App) -> None:
    (session_id,) = await _add_sessions(app.db, 1)
    async with app.db.session() as session:
        # Ended: a queued turn with no runner is the app's own recovery loop's to claim, whose
        # statements would be counted here.
        await turns_repo.add_turn(
            session, session_id=session_id, prompt="hello", status=TurnStatus.COMPLETED
        )
    app.traffic.reset()

    answer = await app.client.get(f"/sessions/{session_id}/turns", headers=_auth())

    assert answer.status_code == 200, answer.text
    assert answer.json()["total"] == 1
    assert app.traffic.checkouts == 1


async def test_a_key_revoked_through_the_gateway_is_refused_at_once(app: App) -> None:
    created = await app.client.post(
        "/keys", json={"name": "reader", "scopes": ["read"]}, headers=_auth()
    )
    secret = created.json()["secret"]
    assert (await app.client.get("/sessions", headers=_auth(secret))).status_code == 200

    revoked = await app.client.delete(f"/keys/{created.json()['id']}", headers=_auth())
    assert revoked.status_code == 200, revoked.text

    refused = await app.client.get("/sessions", headers=_auth(secret))
    assert refused.status_code == 401, refused.text
    assert refused.json()["code"] == "unauthorized"


@pytest.mark.parametrize("key_cache_seconds", [0.0, 0.5])
async def test_a_key_revoked_elsewhere_is_refused_within_the_key_cache_time(
    database: Database, tmp_path: Path, key_cache_seconds: float
) -> None:
    """Another replica (or `paseo-gateway keys revoke`) revokes: this one stops trusting the
    key once `key_cache_seconds` have passed since it last read the key's row."""
    async with _gateway(database, tmp_path, key_cache_seconds=key_cache_seconds) as app:
        elsewhere = AuthService(app.db, stream_token_seconds=60)
        created = await elsewhere.create_key("reader", ["read"], secret=READER)
        assert (await app.client.get("/sessions", headers=_auth(READER))).status_code == 200
        trusted_until = time.monotonic() + key_cache_seconds

        await elsewhere.revoke_key(created.key.id)

        while True:
            asked_at = time.monotonic()
            answer = await app.client.get("/sessions", headers=_auth(READER))
            if not answer.is_success:
                break
            assert asked_at < trusted_until, "still trusted past the key cache time"
            await asyncio.sleep(0.05)
        assert answer.status_code == 401, answer.text
        assert answer.json()["code"] == "unauthorized"


async def test_a_read_key_of_another_owner_lists_only_its_own_sessions(app: App) -> None:
    await _add_sessions(app.db, 2)  # no owner: the admin's to see, not a reader's
    auth = AuthService(app.db, stream_token_seconds=60)
    await auth.create_key("reader", ["read"], secret=READER)

    answer = await app.client.get("/sessions", headers=_auth(READER))

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"items": [], "total": 0, "limit": 50, "offset": 0}
