"""Full-text search over the turns a key may see: what the user's text means, and what the
answer may show.

The words are picked out of the text here (letters and digits; everything else separates
them), so the repository never sees syntax, and a text without any is refused (422) rather
than matching nothing or everything. Snippets are HTML: the turn's text escaped, each match
in `<mark>…</mark>`, so a client may insert them as they are.
"""

from __future__ import annotations

import html
import re
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InvalidInput, SearchQueryEmpty
from app.repositories import search as search_repo
from app.repositories.search import SearchHit
from app.services.access import owner_filter
from app.services.auth import Principal

MAX_QUERY_CHARS = 500
# More words only narrow the match further; the cap bounds the query's cost.
MAX_WORDS = 32
_WORD = re.compile(r"\w+")


def search_words(text: str) -> list[str]:
    """The distinct words of `text`, in order: runs of letters, digits and `_`."""
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidInput(f"q is {len(text)} characters long; at most {MAX_QUERY_CHARS}")
    words = list(dict.fromkeys(word.lower() for word in _WORD.findall(text)))
    if not words:
        raise SearchQueryEmpty(f"q must hold a word (letters or digits) to search for: {text!r}")
    if len(words) > MAX_WORDS:
        raise InvalidInput(f"q has {len(words)} distinct words; at most {MAX_WORDS}")
    return words


def marked_html(snippet: str) -> str:
    """The repository's snippet as HTML: text escaped, its match markers made `<mark>` tags."""
    escaped = html.escape(snippet, quote=False)
    return escaped.replace(search_repo.MARK_START, "<mark>").replace(
        search_repo.MARK_END, "</mark>"
    )


async def search_turns(
    reads: AsyncSession, principal: Principal, text: str, *, limit: int, offset: int
) -> tuple[list[SearchHit], int]:
    """One page of the turns of `principal`'s sessions that hold every word of `text`, best
    match first, then newest first, and how many match in all."""
    hits, total = await search_repo.search_turns(
        reads,
        search_words(text),
        owner_key_id=owner_filter(principal),
        limit=limit,
        offset=offset,
    )
    return [replace(hit, snippet=marked_html(hit.snippet)) for hit in hits], total
