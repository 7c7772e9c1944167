"""Full-text search over the turns of the sessions a key may see."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import ReadOnlyReader, ReadSession
from app.api.problems import problem_responses
from app.api.sessions import Limit, Offset
from app.schemas import Page
from app.schemas_search import SearchHitOut
from app.services import search as search_service

router = APIRouter(prefix="/search", tags=["search"])

SearchText = Annotated[
    str,
    Query(
        min_length=1,
        max_length=search_service.MAX_QUERY_CHARS,
        description=(
            "Words to find in turns' prompts and final texts; a turn matches when it holds "
            "every one (stemmed: `running` finds `run`). Punctuation only separates words."
        ),
        examples=["deploy staging"],
    ),
]


@router.get(
    "",
    response_model=Page[SearchHitOut],
    summary="Search turns' prompts and answers, best match first, then newest first",
    description=(
        "Only turns of sessions the key may see (an admin key: all). 422 `validation_failed` "
        "for an empty or too long `q` or a bad `limit`/`offset`; 422 `search_query_empty` "
        "for a `q` with no letter or digit in it."
    ),
    responses=problem_responses(422),
)
async def search_turns(
    q: SearchText,
    principal: ReadOnlyReader,
    reads: ReadSession,
    limit: Limit = 20,
    offset: Offset = 0,
) -> Page[SearchHitOut]:
    hits, total = await search_service.search_turns(reads, principal, q, limit=limit, offset=offset)
    return Page[SearchHitOut].of(SearchHitOut, hits, total, limit=limit, offset=offset)
