"""Stream tokens name the key they were issued to, and open a stream only while it is active;
on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import time
import uuid

from app.db import Database
from app.services.auth import AuthService, _b64


async def test_a_token_opens_its_turn_while_its_key_is_active(database: Database) -> None:
    auth = AuthService(database, stream_token_seconds=60)
    key = (await auth.create_key("ci", ["prompt"])).key
    turn_id = uuid.uuid4()
    token = await auth.issue_stream_token(turn_id, key.id)

    assert await auth.check_stream_token(token, turn_id)
    assert not await auth.check_stream_token(token, uuid.uuid4())
    await auth.revoke_key(key.id)
    assert not await auth.check_stream_token(token, turn_id)
    # A fresh service (another gateway process) agrees: the key is read, not remembered.
    assert not await AuthService(database, stream_token_seconds=60).check_stream_token(
        token, turn_id
    )


async def test_a_token_of_an_unknown_key_is_refused(database: Database) -> None:
    auth = AuthService(database, stream_token_seconds=60)
    turn_id = uuid.uuid4()

    assert not await auth.check_stream_token(
        await auth.issue_stream_token(turn_id, uuid.uuid4()), turn_id
    )


async def test_a_keyless_token_opens_only_with_keys_disabled(database: Database) -> None:
    auth = AuthService(database, stream_token_seconds=60)
    turn_id = uuid.uuid4()
    token = await auth.issue_stream_token(turn_id, None)

    assert await auth.check_stream_token(token, turn_id, keyless=True)
    assert not await auth.check_stream_token(token, turn_id)


async def _signed(auth: AuthService, claims: object) -> str:
    body = _b64(json.dumps(claims).encode())
    return f"{body}.{_b64(await auth._sign(body))}"


async def test_old_and_malformed_tokens_are_refused(database: Database) -> None:
    """Tokens made before they named their key could outlive a revoke: refused, on purpose."""
    auth = AuthService(database, stream_token_seconds=60)
    key = (await auth.create_key("ci", ["prompt"])).key
    turn_id, exp = uuid.uuid4(), int(time.time() + 60)

    old_format = await _signed(auth, {"turn": str(turn_id), "exp": exp})
    assert not await auth.check_stream_token(old_format, turn_id, keyless=True)
    for claims in (
        {"turn": str(turn_id), "key": "not-a-uuid", "exp": exp},
        {"turn": str(turn_id), "key": 7, "exp": exp},
        {"turn": str(turn_id), "key": str(key.id), "exp": int(time.time() - 1)},
        [str(turn_id), str(key.id)],
    ):
        assert not await auth.check_stream_token(await _signed(auth, claims), turn_id), claims
    assert await auth.check_stream_token(
        await _signed(auth, {"turn": str(turn_id), "key": str(key.id), "exp": exp}), turn_id
    )
