"""Full-text search over turns (app/repositories/search.py and its service), on SQLite's FTS5
table and PostgreSQL's tsvector index: matches, order, pages, owners, and staying in step."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, text, update

from app.db import Database
from app.errors import InvalidInput, SearchQueryEmpty
from app.models import GatewaySession, Turn, TurnStatus
from app.repositories import api_keys as keys_repo
from app.repositories import search as search_repo
from app.repositories import sessions as sessions_repo
from app.repositories import turns as turns_repo
from app.repositories.search import SearchHit
from app.repositories.sessions import OwnerFilter
from app.services import search as search_service
from app.services.auth import AUTH_DISABLED, Principal, granted_by

START = datetime(2026, 1, 1, tzinfo=UTC)


async def _add_key(db: Database, name: str) -> uuid.UUID:
    async with db.session() as session:
        key = await keys_repo.add_key(
            session, name=name, prefix=f"pgw_{name}", secret_hash=name * 8, scopes=["prompt"]
        )
    return key.id


async def _add_session(
    db: Database, *, owner: uuid.UUID | None = None, title: str | None = None
) -> uuid.UUID:
    async with db.session() as session:
        record = await sessions_repo.add_session(
            session, provider="mock", cwd="/tmp", owner_key_id=owner, title=title
        )
    return record.id


async def _add_turn(
    db: Database, session_id: uuid.UUID, prompt: str, final_text: str | None, *, minute: int = 0
) -> uuid.UUID:
    """A completed turn that started `minute` minutes after START."""
    async with db.session() as session:
        turn = await turns_repo.add_turn(
            session, session_id=session_id, prompt=prompt, status=TurnStatus.COMPLETED
        )
        await turns_repo.update_turn(session, turn, final_text=final_text)
        started_at = START + timedelta(minutes=minute)
        await session.execute(update(Turn).where(Turn.id == turn.id).values(started_at=started_at))
    return turn.id


async def _search(
    db: Database,
    *words: str,
    owner: OwnerFilter = sessions_repo.ANY_OWNER,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[SearchHit], int]:
    async with db.read() as session:
        return await search_repo.search_turns(
            session, list(words), owner_key_id=owner, limit=limit, offset=offset
        )


async def _found(
    db: Database, *words: str, owner: OwnerFilter = sessions_repo.ANY_OWNER
) -> list[uuid.UUID]:
    hits, _ = await _search(db, *words, owner=owner)
    return [hit.turn_id for hit in hits]


async def test_finds_a_word_of_a_final_text_and_marks_it(database: Database) -> None:
    session_id = await _add_session(database, title="Release notes")
    turn_id = await _add_turn(
        database, session_id, "what changed?", "The <b>flamingo</b> feature shipped on time."
    )
    await _add_turn(database, session_id, "and then?", "Nothing else happened.", minute=1)

    async with database.read() as session:
        hits, total = await search_service.search_turns(
            session, AUTH_DISABLED, "Flamingo!", limit=10, offset=0
        )

    assert total == 1
    [hit] = hits
    assert (hit.session_id, hit.turn_id, hit.session_title) == (
        session_id,
        turn_id,
        "Release notes",
    )
    assert hit.started_at == START
    # HTML: the match marked, the turn's own markup escaped (SQLite) or left out (PostgreSQL).
    assert "<mark>flamingo</mark>" in hit.snippet
    assert "<b>" not in hit.snippet


async def test_finds_a_prompt_and_stemmed_words(database: Database) -> None:
    session_id = await _add_session(database)
    turn_id = await _add_turn(database, session_id, "keep the tests running", None)

    assert await _found(database, "run") == [turn_id]
    assert await _found(database, "tests", "keep") == [turn_id]
    assert await _found(database, "tests", "absent") == []


async def test_ranks_by_relevance_then_newest_first(database: Database) -> None:
    session_id = await _add_session(database)
    once_old = await _add_turn(database, session_id, "q", "a heron and some ducks", minute=0)
    once_new = await _add_turn(database, session_id, "q", "a heron and some geese", minute=5)
    thrice = await _add_turn(database, session_id, "q", "heron heron heron", minute=1)

    assert await _found(database, "heron") == [thrice, once_new, once_old]


async def test_pages_with_the_total(database: Database) -> None:
    session_id = await _add_session(database)
    turns = [
        await _add_turn(database, session_id, "q", f"otter number {n}", minute=n) for n in range(5)
    ]
    newest_first = list(reversed(turns))

    first, total = await _search(database, "otter", limit=2)
    second, _ = await _search(database, "otter", limit=2, offset=2)
    past_the_end, total_past = await _search(database, "otter", limit=2, offset=10)

    assert total == total_past == 5
    assert [hit.turn_id for hit in first + second] == newest_first[:4]
    assert past_the_end == []
    with pytest.raises(ValueError, match="limit"):
        await _search(database, "otter", limit=0)


async def test_a_key_finds_only_its_own_sessions(database: Database) -> None:
    mine, theirs = await _add_key(database, "mine"), await _add_key(database, "theirs")
    my_turn = await _add_turn(database, await _add_session(database, owner=mine), "q", "walrus")
    their_turn = await _add_turn(
        database, await _add_session(database, owner=theirs), "q", "walrus", minute=1
    )
    keyless_turn = await _add_turn(database, await _add_session(database), "q", "walrus", minute=2)

    assert await _found(database, "walrus", owner=mine) == [my_turn]
    assert await _found(database, "walrus", owner=None) == [keyless_turn]
    assert await _found(database, "walrus") == [keyless_turn, their_turn, my_turn]
    mine_only = Principal(mine, "mine", granted_by(["prompt"]))
    async with database.read() as session:
        hits, total = await search_service.search_turns(
            session, mine_only, "walrus", limit=10, offset=0
        )
    assert ([hit.turn_id for hit in hits], total) == ([my_turn], 1)


async def test_follows_a_changed_final_text(database: Database) -> None:
    session_id = await _add_session(database)
    turn_id = await _add_turn(database, session_id, "q", "a penguin")
    async with database.session() as session:
        turn = await turns_repo.get_turn(session, turn_id)
        assert turn is not None
        await turns_repo.update_turn(session, turn, final_text="a puffin")

    assert await _found(database, "penguin") == []
    assert await _found(database, "puffin") == [turn_id]


async def test_forgets_the_turns_of_a_deleted_session(database: Database) -> None:
    gone = await _add_session(database)
    await _add_turn(database, gone, "q", "a narwhal")
    kept_turn = await _add_turn(database, await _add_session(database), "q", "a narwhal")

    async with database.session() as session:
        await session.execute(delete(GatewaySession).where(GatewaySession.id == gone))

    hits, total = await _search(database, "narwhal")
    assert ([hit.turn_id for hit in hits], total) == ([kept_turn], 1)


@pytest.mark.parametrize(
    "text",
    [
        'say "hello',
        "NEAR(a b)",
        "prefix*",
        "-not",
        "prompt: final_text:",
        "a OR b AND NOT c",
        "{prompt}:x ^start",
        "'; DROP TABLE turns; --",
    ],
)
async def test_query_syntax_in_the_text_is_only_words(database: Database, text: str) -> None:
    session_id = await _add_session(database)
    await _add_turn(database, session_id, text, "nothing")

    async with database.read() as session:
        hits, total = await search_service.search_turns(
            session, AUTH_DISABLED, text, limit=10, offset=0
        )

    # The text's own turn, or nothing on PostgreSQL when all its words are stop words.
    assert total == len(hits) <= 1


@pytest.mark.parametrize("text", ["", "   ", "*", '"" -- ()', "<>!?"])
def test_a_text_without_words_is_refused(text: str) -> None:
    with pytest.raises(SearchQueryEmpty):
        search_service.search_words(text)


def test_a_too_long_text_is_refused() -> None:
    with pytest.raises(InvalidInput, match="at most 500"):
        search_service.search_words("a" * 501)
    assert search_service.search_words("Run, run: RUN now") == ["run", "now"]


def test_snippets_are_escaped_html_with_marked_matches() -> None:
    raw = f"if a < b && {search_repo.MARK_START}heron{search_repo.MARK_END} <script>"
    assert search_service.marked_html(raw) == (
        "if a &lt; b &amp;&amp; <mark>heron</mark> &lt;script&gt;"
    )


async def test_postgresql_uses_the_search_index(postgresql_database: Database) -> None:
    """The repository's document expression is the one migration 0010 indexed."""
    statement = text(
        f"EXPLAIN SELECT id FROM turns WHERE {search_repo.SEARCH_DOCUMENT} "
        "@@ plainto_tsquery('english', :words)"
    )
    async with postgresql_database.read() as session:
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join((await session.execute(statement, {"words": "heron"})).scalars())

    assert "ix_turns_search" in plan
