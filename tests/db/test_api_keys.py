"""API keys, the key that owns each session, per-key turn counts and the gateway's shared
secrets, in the data layer; on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app.db import Database
from app.models import ApiKey, GatewaySecret, GatewaySession
from app.repositories import api_keys as keys_repo
from app.repositories import secrets as secrets_repo
from app.repositories import sessions as sessions_repo
from app.repositories import turns as turns_repo
from app.repositories.sessions import ANY_OWNER, OwnerFilter
from tests.conftest import RACER_SECONDS, until_blocked

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _hash_of(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def _new_key(db: Database, name: str = "ci", **fields: Any) -> ApiKey:
    secret = f"pgw_{uuid.uuid4().hex}"
    values = {"prefix": secret[:8], "secret_hash": _hash_of(secret), "scopes": ["sessions"]}
    async with db.session() as session:
        return await keys_repo.add_key(session, name=name, **{**values, **fields})


async def _new_session(db: Database, **fields: Any) -> GatewaySession:
    async with db.session() as session:
        return await sessions_repo.add_session(
            session, **{"provider": "claude", "cwd": "/work", **fields}
        )


async def _stored_key(db: Database, key_id: uuid.UUID) -> ApiKey:
    async with db.session() as session:
        key = await keys_repo.get_key(session, key_id)
    assert key is not None
    return key


async def _revoke(db: Database, key_id: uuid.UUID) -> ApiKey | None:
    async with db.session() as session:
        return await keys_repo.revoke_key(session, key_id)


# --- api keys: add and get --------------------------------------------------------------------


async def test_add_key_fills_in_id_and_creation_time(database: Database) -> None:
    before = datetime.now(UTC)

    added = await _new_key(
        database, "deploy bot", prefix="pgw_1a2b", secret_hash="0f" * 32, scopes=("b", "a")
    )

    stored = await _stored_key(database, added.id)
    assert isinstance(stored.id, uuid.UUID)
    assert (stored.name, stored.prefix, stored.secret_hash) == ("deploy bot", "pgw_1a2b", "0f" * 32)
    assert stored.scopes == ["b", "a"]  # a list, in the order given
    assert before <= stored.created_at <= datetime.now(UTC)
    assert stored.revoked_at is None


async def test_a_key_may_have_no_scopes(database: Database) -> None:
    added = await _new_key(database, scopes=[])

    assert (await _stored_key(database, added.id)).scopes == []


async def test_a_second_key_with_the_same_secret_hash_is_refused(database: Database) -> None:
    first = await _new_key(database, "first", secret_hash="ab" * 32)

    with pytest.raises(IntegrityError):
        await _new_key(database, "second", secret_hash="ab" * 32)

    async with database.session() as session:
        keys = await keys_repo.list_keys(session, include_revoked=True)
    assert [key.id for key in keys] == [first.id]


async def test_one_string_as_scopes_is_refused(database: Database) -> None:
    with pytest.raises(TypeError, match="single scope"):
        await _new_key(database, scopes="sessions")


@pytest.mark.parametrize(("field", "longest"), [("name", 100), ("prefix", 16), ("secret_hash", 64)])
async def test_values_longer_than_their_column_are_refused(
    database: Database, field: str, longest: int
) -> None:
    """PostgreSQL would refuse them and SQLite keep them: both refuse them here."""
    await _new_key(database, **{field: "x" * longest})

    with pytest.raises(ValueError, match=f"{field} may be at most {longest}"):
        await _new_key(database, **{field: "y" * (longest + 1)})

    async with database.session() as session:
        assert len(await keys_repo.list_keys(session)) == 1


async def test_get_key_by_hash_finds_the_key_revoked_or_not(database: Database) -> None:
    key = await _new_key(database, secret_hash=_hash_of("pgw_secret"))
    await _new_key(database)

    async with database.session() as session:
        found = await keys_repo.get_key_by_hash(session, _hash_of("pgw_secret"))
        missing = await keys_repo.get_key_by_hash(session, _hash_of("pgw_other"))
    assert found is not None and found.id == key.id
    assert missing is None

    await _revoke(database, key.id)
    async with database.session() as session:
        revoked = await keys_repo.get_key_by_hash(session, _hash_of("pgw_secret"))
    assert revoked is not None and revoked.revoked_at is not None


async def test_get_key_is_none_for_an_unknown_id(database: Database) -> None:
    async with database.session() as session:
        assert await keys_repo.get_key(session, uuid.uuid4()) is None


# --- api keys: list, revoke, count ------------------------------------------------------------


async def _keys_created_at(db: Database, *offsets_minutes: int) -> list[ApiKey]:
    """Keys whose created_at are T0 plus the given minutes, in that order."""
    keys = [await _new_key(db, f"key-{minutes}") for minutes in offsets_minutes]
    async with db.session() as session:
        for key, minutes in zip(keys, offsets_minutes, strict=True):
            await session.execute(
                update(ApiKey)
                .where(ApiKey.id == key.id)
                .values(created_at=T0 + timedelta(minutes=minutes))
            )
    return keys


async def test_list_keys_oldest_first_and_without_revoked_ones(database: Database) -> None:
    await _keys_created_at(database, 2, 0, 3, 1)
    async with database.session() as session:
        [revoked] = [key for key in await keys_repo.list_keys(session) if key.name == "key-3"]
    await _revoke(database, revoked.id)

    async with database.session() as session:
        active = await keys_repo.list_keys(session)
        every = await keys_repo.list_keys(session, include_revoked=True)

    assert [key.name for key in active] == ["key-0", "key-1", "key-2"]
    assert [key.name for key in every] == ["key-0", "key-1", "key-2", "key-3"]


async def test_list_keys_of_none_is_empty(database: Database) -> None:
    async with database.session() as session:
        assert await keys_repo.list_keys(session, include_revoked=True) == []


async def test_revoke_key_stamps_it_now(database: Database) -> None:
    key = await _new_key(database)
    other = await _new_key(database)
    before = datetime.now(UTC)

    revoked = await _revoke(database, key.id)

    assert revoked is not None and revoked.id == key.id
    assert revoked.revoked_at is not None
    assert before <= revoked.revoked_at <= datetime.now(UTC)
    assert (await _stored_key(database, key.id)).revoked_at == revoked.revoked_at
    assert (await _stored_key(database, other.id)).revoked_at is None


async def test_revoking_twice_keeps_the_first_time(database: Database) -> None:
    key = await _new_key(database)
    first = await _revoke(database, key.id)

    again = await _revoke(database, key.id)

    assert first is not None and again is not None
    assert again.revoked_at == first.revoked_at


async def test_revoking_an_unknown_key_is_none(database: Database) -> None:
    assert await _revoke(database, uuid.uuid4()) is None


async def test_revoke_refreshes_the_key_this_session_holds(database: Database) -> None:
    key = await _new_key(database)

    async with database.session() as session:
        held = await keys_repo.get_key(session, key.id)
        revoked = await keys_repo.revoke_key(session, key.id)

        assert held is revoked
        assert held is not None and held.revoked_at is not None


async def test_racing_revokes_agree_on_the_time(database: Database) -> None:
    key = await _new_key(database)

    async with database.session() as first:
        mine = await keys_repo.revoke_key(first, key.id)
        racer = asyncio.create_task(_revoke(database, key.id))
        await until_blocked(database, racer)  # on the first revocation's transaction

    theirs = await asyncio.wait_for(racer, RACER_SECONDS)
    assert mine is not None and theirs is not None
    assert theirs.revoked_at == mine.revoked_at


async def test_a_revocation_is_undone_with_its_transaction(database: Database) -> None:
    key = await _new_key(database)

    with pytest.raises(RuntimeError):
        async with database.session() as session:
            await keys_repo.revoke_key(session, key.id)
            raise RuntimeError("rolled back")

    assert (await _stored_key(database, key.id)).revoked_at is None


async def test_count_active_keys(database: Database) -> None:
    async with database.session() as session:
        assert await keys_repo.count_active_keys(session) == 0
    keys = [await _new_key(database) for _ in range(3)]
    await _revoke(database, keys[1].id)

    async with database.session() as session:
        assert await keys_repo.count_active_keys(session) == 2


# --- sessions: owners -------------------------------------------------------------------------


async def test_a_session_has_no_owner_unless_given(database: Database) -> None:
    key = await _new_key(database)
    owned = await _new_session(database, owner_key_id=key.id)
    unowned = await _new_session(database)

    async with database.session() as session:
        stored_owned = await sessions_repo.get_session(session, owned.id)
        stored_unowned = await sessions_repo.get_session(session, unowned.id)

    assert stored_owned is not None and stored_owned.owner_key_id == key.id
    assert stored_unowned is not None and stored_unowned.owner_key_id is None


async def test_a_session_of_an_unknown_key_is_refused(database: Database) -> None:
    with pytest.raises(IntegrityError):
        await _new_session(database, owner_key_id=uuid.uuid4())


async def test_update_session_can_change_the_owner(database: Database) -> None:
    old, new = await _new_key(database), await _new_key(database)
    record = await _new_session(database, owner_key_id=old.id)

    async with database.session() as session:
        await sessions_repo.update_session(session, record, owner_key_id=new.id)

    async with database.session() as session:
        stored = await sessions_repo.get_session(session, record.id)
    assert stored is not None and stored.owner_key_id == new.id


async def test_deleting_a_key_leaves_its_sessions_and_turns_without_an_owner(
    database: Database,
) -> None:
    """ON DELETE SET NULL: the sessions and their turns stay. (Revoking keeps the owner.)"""
    key = await _new_key(database)
    other = await _new_key(database)
    owned = await _new_session(database, owner_key_id=key.id)
    kept = await _new_session(database, owner_key_id=other.id)
    async with database.session() as session:
        turn = await turns_repo.add_turn(session, session_id=owned.id, prompt="p")

    async with database.session() as session:
        loaded = await keys_repo.get_key(session, key.id)
        await session.delete(loaded)

    async with database.session() as session:
        stored = await sessions_repo.get_session(session, owned.id)
        stored_kept = await sessions_repo.get_session(session, kept.id)
        stored_turn = await turns_repo.get_turn(session, turn.id)
    assert stored is not None and stored.owner_key_id is None
    assert stored_kept is not None and stored_kept.owner_key_id == other.id
    assert stored_turn is not None


async def test_revoking_a_key_keeps_its_sessions_owned(database: Database) -> None:
    key = await _new_key(database)
    record = await _new_session(database, owner_key_id=key.id)

    await _revoke(database, key.id)

    async with database.session() as session:
        assert await sessions_repo.count_sessions(session, owner_key_id=key.id) == 1
        stored = await sessions_repo.get_session(session, record.id)
    assert stored is not None and stored.owner_key_id == key.id


async def _sessions_of_owners(db: Database) -> tuple[dict[str, uuid.UUID], dict[uuid.UUID, str]]:
    """Keys "a" and "b", and sessions a1, a2 (a's), b1 (b's) and n1 (no owner's)."""
    keys = {name: (await _new_key(db, name)).id for name in ("a", "b")}
    names = {}
    for name, owner in {"a1": "a", "a2": "a", "b1": "b", "n1": None}.items():
        record = await _new_session(db, owner_key_id=keys[owner] if owner else None)
        names[record.id] = name
    return keys, names


@pytest.mark.parametrize(
    ("owner", "expected"),
    [("a", {"a1", "a2"}), ("b", {"b1"}), (None, {"n1"}), ("any", {"a1", "a2", "b1", "n1"})],
    ids=["owner-a", "owner-b", "no-owner", "any-owner"],
)
async def test_list_and_count_sessions_filter_by_owner(
    database: Database, owner: str | None, expected: set[str]
) -> None:
    keys, names = await _sessions_of_owners(database)
    wanted: OwnerFilter = ANY_OWNER if owner == "any" else keys[owner] if owner else None

    async with database.session() as session:
        page, total = await sessions_repo.list_sessions(session, owner_key_id=wanted)
        count = await sessions_repo.count_sessions(session, owner_key_id=wanted)

    assert {names[record.id] for record in page} == expected
    assert total == count == len(expected)


async def test_leaving_the_owner_out_lists_every_session(database: Database) -> None:
    _, names = await _sessions_of_owners(database)

    async with database.session() as session:
        page, total = await sessions_repo.list_sessions(session)
        count = await sessions_repo.count_sessions(session)

    assert {record.id for record in page} == set(names)
    assert total == count == 4


async def test_an_unknown_owner_has_no_sessions(database: Database) -> None:
    await _sessions_of_owners(database)

    async with database.session() as session:
        page, total = await sessions_repo.list_sessions(session, owner_key_id=uuid.uuid4())

    assert (page, total) == ([], 0)


async def test_owner_filter_combines_with_status_labels_and_paging(database: Database) -> None:
    key = await _new_key(database)
    matching = []
    for minutes, owner, status, team in [
        (0, key.id, "active", "x"),
        (1, key.id, "active", "x"),
        (2, key.id, "closed", "x"),
        (3, key.id, "active", "y"),
        (4, None, "active", "x"),
    ]:
        record = await _new_session(
            database, owner_key_id=owner, status=status, labels={"team": team}
        )
        async with database.session() as session:
            await session.execute(
                update(GatewaySession)
                .where(GatewaySession.id == record.id)
                .values(created_at=T0 + timedelta(minutes=minutes))
            )
        if (owner, status, team) == (key.id, "active", "x"):
            matching.append(record.id)

    async with database.session() as session:
        page, total = await sessions_repo.list_sessions(
            session, owner_key_id=key.id, status="active", labels={"team": "x"}, limit=1, offset=1
        )

    assert total == 2
    assert [record.id for record in page] == [matching[0]]  # newest first: the older is second


async def test_agent_ids_of_owner(database: Database) -> None:
    key, other = await _new_key(database), await _new_key(database)
    await _new_session(database, owner_key_id=key.id, agent_id="agent-1")
    await _new_session(database, owner_key_id=key.id, agent_id="agent-2")
    await _new_session(database, owner_key_id=key.id)  # pending: no agent yet
    await _new_session(database, owner_key_id=other.id, agent_id="agent-3")
    await _new_session(database, agent_id="agent-4")

    async with database.session() as session:
        mine = await sessions_repo.agent_ids_of_owner(session, key.id)
        theirs = await sessions_repo.agent_ids_of_owner(session, other.id)
        nobodys = await sessions_repo.agent_ids_of_owner(session, uuid.uuid4())

    assert (mine, theirs, nobodys) == ({"agent-1", "agent-2"}, {"agent-3"}, set())


# --- gateway secrets --------------------------------------------------------------------------


def _maker(value: str, calls: list[str]) -> Callable[[], str]:
    def make() -> str:
        calls.append(value)
        return value

    return make


async def _secret(db: Database, name: str, make: Callable[[], str]) -> str:
    async with db.session() as session:
        return await secrets_repo.get_or_create_secret(session, name, make)


async def _secret_rows(db: Database) -> list[tuple[str, str]]:
    async with db.session() as session:
        rows = await session.execute(select(GatewaySecret.name, GatewaySecret.value))
    return sorted((name, value) for name, value in rows)


async def test_a_secret_is_made_once_and_then_read(database: Database) -> None:
    calls: list[str] = []
    before = datetime.now(UTC)

    made = await _secret(database, "signing", _maker("first", calls))
    again = await _secret(database, "signing", _maker("second", calls))

    assert (made, again) == ("first", "first")
    assert calls == ["first"]  # not made again once stored
    async with database.session() as session:
        stored = await session.get(GatewaySecret, "signing")
    assert stored is not None and before <= stored.created_at <= datetime.now(UTC)


async def test_secrets_are_per_name(database: Database) -> None:
    assert await _secret(database, "a", lambda: "value-a") == "value-a"
    assert await _secret(database, "b", lambda: "value-b") == "value-b"

    assert await _secret_rows(database) == [("a", "value-a"), ("b", "value-b")]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [("n" * 65, "v", "name may be at most 64"), ("n", "v" * 257, "value may be at most 256")],
    ids=["name", "value"],
)
async def test_a_secret_longer_than_its_column_is_refused(
    database: Database, name: str, value: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await _secret(database, name, lambda: value)

    assert await _secret_rows(database) == []


async def test_a_secret_made_in_a_rolled_back_transaction_is_made_again(
    database: Database,
) -> None:
    with pytest.raises(RuntimeError):
        async with database.session() as session:
            await secrets_repo.get_or_create_secret(session, "signing", lambda: "lost")
            raise RuntimeError("rolled back")

    assert await _secret(database, "signing", lambda: "kept") == "kept"


async def test_racing_creators_end_with_the_first_ones_value(database: Database) -> None:
    """The second INSERT waits for the first transaction, then reads the value it stored."""
    calls: list[str] = []

    async with database.session() as first:
        mine = await secrets_repo.get_or_create_secret(first, "signing", _maker("mine", calls))
        racer = asyncio.create_task(_secret(database, "signing", _maker("theirs", calls)))
        await until_blocked(database, racer)  # it found none, made one, waits to insert it

    theirs = await asyncio.wait_for(racer, RACER_SECONDS)
    assert (mine, theirs) == ("mine", "mine")
    assert calls == ["mine", "theirs"]  # both made one; only the first was kept
    assert await _secret_rows(database) == [("signing", "mine")]


async def test_a_racer_keeps_its_value_when_the_first_rolls_back(database: Database) -> None:
    with pytest.raises(RuntimeError):
        async with database.session() as first:
            await secrets_repo.get_or_create_secret(first, "signing", lambda: "rolled back")
            racer = asyncio.create_task(_secret(database, "signing", lambda: "theirs"))
            await until_blocked(database, racer)
            raise RuntimeError("the first transaction fails")

    assert await asyncio.wait_for(racer, RACER_SECONDS) == "theirs"
    assert await _secret_rows(database) == [("signing", "theirs")]


async def test_many_concurrent_creators_agree_on_one_value(database: Database) -> None:
    values = await asyncio.wait_for(
        asyncio.gather(*(_secret(database, "signing", lambda n=n: f"v{n}") for n in range(6))),
        RACER_SECONDS,
    )

    assert len(set(values)) == 1
    async with database.session() as session:
        assert await session.scalar(select(func.count()).select_from(GatewaySecret)) == 1
    assert await _secret_rows(database) == [("signing", values[0])]
