"""Full-text search over turns' prompts and final texts (migration 0010 made what it reads).

PostgreSQL matches the tsvector expression its GIN index is built on; SQLite matches the FTS5
table `turns_fts`. Both take a list of plain words (the service picks them out of the user's
text) and match turns that contain every one, stemmed. On SQLite each word goes into the FTS5
query as a quoted string, so no user text is ever read as FTS5 syntax (NEAR, *, -, column:).

Snippets mark matches with `MARK_START` and `MARK_END`, private-use characters no user text
is expected to hold, so the service can escape the text and then put `<mark>` tags in.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    bindparam,
    case,
    column,
    func,
    literal_column,
    select,
    table,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.models import GatewaySession, Turn
from app.repositories.sessions import ANY_OWNER, OwnerFilter, check_page
from app.search_schema import SEARCH_TABLE

MARK_START = "\ue000"
MARK_END = "\ue001"
ELLIPSIS = "…"
# Words around the matches in a snippet (FTS5 counts tokens; ts_headline counts words).
SNIPPET_WORDS = 24
# The exact expression migration 0010 indexed: PostgreSQL uses the GIN index only for a query
# on the same expression, with literals rather than bound parameters.
SEARCH_DOCUMENT = (
    "to_tsvector('english', coalesce(turns.prompt, '') || ' ' || coalesce(turns.final_text, ''))"
)
HEADLINE_OPTIONS = (
    f'StartSel="{MARK_START}", StopSel="{MARK_END}", MaxWords={SNIPPET_WORDS}, '
    f'MinWords={SNIPPET_WORDS // 2}, MaxFragments=2, FragmentDelimiter=" {ELLIPSIS} "'
)

_fts = table(SEARCH_TABLE, column("rowid"), column("turn_id"))
_FTS: ColumnElement[Any] = literal_column(SEARCH_TABLE)


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One matching turn, its snippet marked with `MARK_START`/`MARK_END`."""

    session_id: uuid.UUID
    turn_id: uuid.UUID
    started_at: datetime
    session_title: str | None
    snippet: str


async def search_turns(
    session: AsyncSession,
    words: list[str],
    *,
    owner_key_id: OwnerFilter = ANY_OWNER,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[SearchHit], int]:
    """One page of the turns that hold every word, best match first, then newest first, and
    how many match in all. `words` must not be empty."""
    if not words:
        raise ValueError("search needs at least one word")
    check_page(limit, offset)
    if session.get_bind().dialect.name == "postgresql":
        return await _search_postgresql(session, words, owner_key_id, limit, offset)
    return await _search_sqlite(session, words, owner_key_id, limit, offset)


def fts5_query(words: list[str]) -> str:
    """The FTS5 query for "every word": each one a quoted string (`"` doubled inside)."""
    return " ".join('"' + word.replace('"', '""') + '"' for word in words)


def _owned(statement: Select[Any], owner: OwnerFilter) -> Select[Any]:
    """The listing's owner filter, as `sessions_repo.list_sessions` applies it."""
    if owner is ANY_OWNER:
        return statement
    # `== None` renders IS NULL: sessions without an owner.
    return statement.where(GatewaySession.owner_key_id == owner)


def _ordered(statement: Select[Any], best_first: ColumnElement[Any]) -> Select[Any]:
    return statement.order_by(best_first, Turn.started_at.desc(), Turn.id.desc())


async def _search_sqlite(
    session: AsyncSession, words: list[str], owner: OwnerFilter, limit: int, offset: int
) -> tuple[list[SearchHit], int]:
    """bm25() (lower is better) may not share a SELECT with a window function, so the matches
    are ranked in a subquery; snippet() is asked for the page's rows only, in a second query."""
    query = fts5_query(words)
    matches = (
        select(
            _fts.c.rowid.label("fts_rowid"),
            _fts.c.turn_id,
            func.bm25(_FTS).label("rank"),
        )
        .where(_FTS.op("MATCH")(bindparam("query", query)))
        .subquery("matches")
    )
    page = _ordered(
        _owned(
            select(
                matches.c.fts_rowid,
                Turn.session_id,
                Turn.id,
                Turn.started_at,
                GatewaySession.title,
                func.count().over(),
            )
            .select_from(matches)
            .join(Turn, Turn.id == matches.c.turn_id)
            .join(GatewaySession, GatewaySession.id == Turn.session_id),
            owner,
        ),
        matches.c.rank.asc(),
    )
    rows = (await session.execute(page.limit(limit).offset(offset))).all()
    if not rows:
        return [], await _count_sqlite(session, query, owner)
    snippets = await _snippets_sqlite(session, query, [row[0] for row in rows])
    hits = [SearchHit(row[1], row[2], row[3], row[4], snippets.get(row[0], "")) for row in rows]
    return hits, rows[0][5]


async def _snippets_sqlite(
    session: AsyncSession, query: str, fts_rowids: list[int]
) -> dict[int, str]:
    """snippet() of the best-matching column (-1) for each of these FTS rows."""
    snippet = func.snippet(_FTS, -1, MARK_START, MARK_END, ELLIPSIS, SNIPPET_WORDS)
    statement = select(_fts.c.rowid, snippet).where(
        _FTS.op("MATCH")(bindparam("query", query)), _fts.c.rowid.in_(fts_rowids)
    )
    return {rowid: text for rowid, text in (await session.execute(statement)).all()}


async def _count_sqlite(session: AsyncSession, query: str, owner: OwnerFilter) -> int:
    statement = _owned(
        select(func.count())
        .select_from(_fts)
        .join(Turn, Turn.id == _fts.c.turn_id)
        .join(GatewaySession, GatewaySession.id == Turn.session_id)
        .where(_FTS.op("MATCH")(bindparam("query", query))),
        owner,
    )
    return int((await session.execute(statement)).scalar_one())


def _headline(
    text: ColumnElement[Any] | InstrumentedAttribute[Any], query: ColumnElement[Any]
) -> ColumnElement[str]:
    return func.ts_headline(literal_column("'english'"), text, query, HEADLINE_OPTIONS)


async def _search_postgresql(
    session: AsyncSession, words: list[str], owner: OwnerFilter, limit: int, offset: int
) -> tuple[list[SearchHit], int]:
    """ts_rank (higher is better) orders the page; ts_headline, which is slow, runs only on
    the page's rows (the outer query), on the answer if it matches, else on the prompt."""
    query = func.plainto_tsquery(literal_column("'english'"), " ".join(words))
    document: ColumnElement[Any] = literal_column(SEARCH_DOCUMENT)
    rank = func.ts_rank(document, query)
    page = _ordered(
        _owned(
            select(Turn.id.label("turn_id"), rank.label("rank"), func.count().over().label("total"))
            .join(GatewaySession, GatewaySession.id == Turn.session_id)
            .where(document.op("@@")(query)),
            owner,
        ),
        rank.desc(),
    )
    found = page.limit(limit).offset(offset).subquery("found")
    answer = func.coalesce(Turn.final_text, "")
    answer_matches = func.to_tsvector(literal_column("'english'"), answer).op("@@")(query)
    snippet = case((answer_matches, _headline(answer, query)), else_=_headline(Turn.prompt, query))
    statement = (
        select(
            Turn.session_id,
            Turn.id,
            Turn.started_at,
            GatewaySession.title,
            snippet,
            found.c.total,
        )
        .select_from(found)
        .join(Turn, Turn.id == found.c.turn_id)
        .join(GatewaySession, GatewaySession.id == Turn.session_id)
        .order_by(found.c.rank.desc(), Turn.started_at.desc(), Turn.id.desc())
    )
    rows = (await session.execute(statement)).all()
    if not rows:
        return [], await _count_postgresql(session, document, query, owner)
    return [SearchHit(*row[:5]) for row in rows], rows[0][5]


async def _count_postgresql(
    session: AsyncSession,
    document: ColumnElement[Any],
    query: ColumnElement[Any],
    owner: OwnerFilter,
) -> int:
    statement = _owned(
        select(func.count())
        .select_from(Turn)
        .join(GatewaySession, GatewaySession.id == Turn.session_id)
        .where(document.op("@@")(query)),
        owner,
    )
    return int((await session.execute(statement)).scalar_one())
