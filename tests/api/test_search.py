"""`GET /search` on the suite's shared gateways (both backends): a key finds words of its own
turns' answers and nothing of another key's sessions; bad input is a 422 problem."""

from __future__ import annotations

import uuid

import httpx

from tests.api.test_prompt import INSTANT, new_session, stream_prompt
from tests.api.test_security import make_key
from tests.api.test_sessions import assert_problem

ANSWER_WORD = "stress"  # in the mock's answer to INSTANT, not in the prompt


async def test_a_key_finds_its_answers_and_not_another_keys(client: httpx.AsyncClient) -> None:
    # Fresh keys: the shared gateway's other tests ran the same prompt with other keys.
    mine, theirs = await make_key(client, "prompt"), await make_key(client, "prompt")
    title = f"search {uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=client.base_url, timeout=60, headers=mine) as me:
        my_session = await new_session(me, title=title)
        response, events = await stream_prompt(me, my_session["id"], INSTANT)
        assert response.status_code == 200, response.text
        turn_id = events[-1].json()["turn_id"]

        found = await me.get("/search", params={"q": ANSWER_WORD})

    assert found.status_code == 200, found.text
    page = found.json()
    assert (page["total"], page["limit"], page["offset"]) == (1, 20, 0)
    [hit] = page["items"]
    assert (hit["session_id"], hit["turn_id"], hit["session_title"]) == (
        my_session["id"],
        turn_id,
        title,
    )
    assert "<mark>" in hit["snippet"] and "</mark>" in hit["snippet"]
    assert hit["started_at"]

    hidden = await client.get("/search", params={"q": ANSWER_WORD}, headers=theirs)
    assert hidden.status_code == 200, hidden.text
    assert hidden.json() == {"items": [], "total": 0, "limit": 20, "offset": 0}
    # The admin key sees every session: this newest turn is on its first page.
    admin = await client.get("/search", params={"q": ANSWER_WORD, "limit": 200})
    assert turn_id in {item["turn_id"] for item in admin.json()["items"]}


async def test_bad_input_is_a_422_problem(client: httpx.AsyncClient) -> None:
    empty = assert_problem(await client.get("/search", params={"q": ""}), 422, "validation_failed")
    assert "q" in empty["detail"]
    assert_problem(await client.get("/search"), 422, "validation_failed")
    assert_problem(await client.get("/search", params={"q": "x" * 501}), 422, "validation_failed")
    assert_problem(
        await client.get("/search", params={"q": "x", "limit": 0}), 422, "validation_failed"
    )
    no_word = assert_problem(
        await client.get("/search", params={"q": '"*" -:'}), 422, "search_query_empty"
    )
    assert "word" in no_word["detail"]
