"""A turn as items: `fold_items` folds a turn's events into what a client renders (pure), and
`read_turn_items` reads them from storage (SQLite and PostgreSQL)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest

from app.db import Database
from app.errors import SessionNotFound, TurnNotFound
from app.models import TurnStatus
from app.repositories import sessions as sessions_repo
from app.repositories import turn_events as events_repo
from app.repositories import turns as turns_repo
from app.schemas import TurnItemsOut
from app.services.turn.events import StoredEvent
from app.services.turn.items import READ_PAGE_SIZE, fold_items, read_turn_items

TURN = uuid.UUID("5f0c1d2e-0000-4000-8000-000000000001")
STARTED = ("turn.started", {"turn_id": str(TURN), "agent_id": None, "events_url": "/e"})
USAGE = {"input_tokens": 12, "output_tokens": 3, "cached_tokens": 1, "cost_usd": 0.25}


def _events(*pairs: tuple[str, dict[str, Any]]) -> list[StoredEvent]:
    """The events numbered 1, 2, 3... in the order given."""
    return [StoredEvent(seq, name, data) for seq, (name, data) in enumerate(pairs, start=1)]


def _text(delta: str) -> tuple[str, dict[str, Any]]:
    return "text", {"delta": delta}


def _reasoning(delta: str) -> tuple[str, dict[str, Any]]:
    return "reasoning", {"delta": delta}


def _tool(
    call_id: str | None,
    status: str,
    detail: dict[str, Any] | None = None,
    *,
    name: str = "bash",
    kind: str = "shell",
    error: str | None = None,
) -> tuple[str, dict[str, Any]]:
    data = {"call_id": call_id, "name": name, "status": status, "kind": kind}
    return "tool", {**data, "detail": detail or {}, "error": error}


def _completed(usage: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    data = {"turn_id": str(TURN), "status": "completed", "final_text": "", "error_code": None}
    return "turn.completed", {**data, "message": "done", "usage": usage}


def _fold(*pairs: tuple[str, dict[str, Any]], prompt: str = "hi") -> list[dict[str, Any]]:
    return fold_items(TURN, prompt, _events(*pairs))


def _shape(items: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """Each item as (type, role or '') with its numbers: the order at a glance."""
    return [(i["type"], i.get("role", ""), i["first_seq"], i["last_seq"]) for i in items]


def _texts(items: list[dict[str, Any]], role: str = "assistant") -> list[str]:
    return [i["content"][0]["text"] for i in items if i["type"] == "message" and i["role"] == role]


# --- the prompt ------------------------------------------------------------------------------


def test_the_prompt_comes_first_numbered_by_turn_started() -> None:
    items = _fold(STARTED, _text("hello"), prompt="Say hello")
    assert items[0] == {
        "id": f"{TURN}:1",
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "Say hello"}],
        "first_seq": 1,
        "last_seq": 1,
    }


def test_a_turn_without_events_yet_is_its_prompt() -> None:
    items = fold_items(TURN, "wait for me", [])
    assert items == [
        {
            "id": f"{TURN}:0",
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "wait for me"}],
            "first_seq": 0,
            "last_seq": 0,
        }
    ]


def test_the_prompt_lists_its_images_and_attachments() -> None:
    images = [{"media_type": "image/png", "bytes": 70}]
    attachments = [{"title": "notes.txt", "bytes": 12}]
    started = ("turn.started", {**STARTED[1], "images": images, "attachments": attachments})
    (prompt,) = _fold(started)
    assert prompt["images"] == images and prompt["attachments"] == attachments
    (plain,) = _fold(STARTED)
    assert "images" not in plain and "attachments" not in plain


def test_a_steered_prompt_is_a_user_message_where_it_joined() -> None:
    items = _fold(STARTED, _text("one"), ("turn.steered", {"prompt": "also two"}), _text("two"))
    assert _shape(items) == [
        ("message", "user", 1, 1),
        ("message", "assistant", 2, 2),
        ("message", "user", 3, 3),
        ("message", "assistant", 4, 4),
    ]
    assert _texts(items, "user") == ["hi", "also two"]


# --- text and reasoning ----------------------------------------------------------------------


def test_contiguous_text_deltas_are_one_assistant_message() -> None:
    items = _fold(STARTED, ("agent.created", {"agent_id": "a"}), _text("Hel"), _text("lo"))
    assert items[1] == {
        "id": f"{TURN}:3",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Hello"}],
        "first_seq": 3,
        "last_seq": 4,
    }
    assert len(items) == 2


def test_reasoning_and_text_alternate_in_blocks() -> None:
    items = _fold(
        STARTED,
        _reasoning("Think"),
        _reasoning("ing."),
        _text("A"),
        _text("B"),
        _reasoning("More."),
        _text("C"),
    )
    assert _shape(items) == [
        ("message", "user", 1, 1),
        ("reasoning", "", 2, 3),
        ("message", "assistant", 4, 5),
        ("reasoning", "", 6, 6),
        ("message", "assistant", 7, 7),
    ]
    assert [i["text"] for i in items if i["type"] == "reasoning"] == ["Thinking.", "More."]
    assert _texts(items) == ["AB", "C"]
    assert set(items[1]) == {"id", "type", "text", "first_seq", "last_seq"}


def test_text_after_a_tool_call_starts_a_new_block_and_the_blocks_add_up() -> None:
    deltas = ["Let me ", "look. ", "Found ", "it."]
    items = _fold(
        STARTED,
        _text(deltas[0]),
        _text(deltas[1]),
        _tool("c1", "running"),
        _text(deltas[2]),
        _tool("c1", "completed"),  # a later state of a call shown before: no new item
        _text(deltas[3]),
        _completed(),
    )
    assert _shape(items) == [
        ("message", "user", 1, 1),
        ("message", "assistant", 2, 3),
        ("tool_call", "", 4, 6),
        ("message", "assistant", 5, 7),
    ]
    assert _texts(items) == ["Let me look. ", "Found it."]
    assert "".join(_texts(items)) == "".join(deltas)  # the turn's final_text


# --- tool calls ------------------------------------------------------------------------------


def test_a_tool_call_is_one_item_in_its_final_state_with_details_merged() -> None:
    running = {"command": "pytest -x", "cwd": "/w"}
    done = {"output": "1 failed", "exit_code": 1}
    items = _fold(STARTED, _tool("c1", "running", running), _tool("c1", "failed", done, error="1"))
    assert items[1] == {
        "id": f"{TURN}:2",
        "type": "tool_call",
        "call_id": "c1",
        "name": "bash",
        "kind": "shell",
        "status": "failed",
        "detail": {"command": "pytest -x", "cwd": "/w", "output": "1 failed", "exit_code": 1},
        "error": "1",
        "first_seq": 2,
        "last_seq": 3,
    }


def test_a_later_detail_key_wins_and_a_missing_one_is_kept() -> None:
    first = {"path": "a.py", "content": "partial"}
    items = _fold(
        STARTED, _tool("c1", "running", first), _tool("c1", "completed", {"content": "whole"})
    )
    assert items[1]["detail"] == {"path": "a.py", "content": "whole"}
    assert items[1]["status"] == "completed" and items[1]["error"] is None


def test_interleaved_calls_keep_the_places_they_first_appeared() -> None:
    items = _fold(
        STARTED,
        _tool("read-1", "running", name="read", kind="read"),
        _tool("grep-1", "running", name="grep", kind="search"),
        _tool("grep-1", "completed", name="grep", kind="search"),
        _tool("read-1", "completed", name="read", kind="read"),
    )
    calls = [(i["call_id"], i["status"], i["first_seq"], i["last_seq"]) for i in items[1:]]
    assert calls == [("read-1", "completed", 2, 5), ("grep-1", "completed", 3, 4)]


def test_states_without_a_call_id_are_items_of_their_own() -> None:
    items = _fold(STARTED, _tool(None, "running"), _tool(None, "completed"))
    assert [i["status"] for i in items[1:]] == ["running", "completed"]
    assert len({i["call_id"] for i in items[1:]}) == 2


def test_folding_leaves_the_events_as_they_were() -> None:
    events = _events(STARTED, _tool("c1", "running", {"a": 1}), _tool("c1", "done", {"b": 2}))
    before = copy.deepcopy([event.data for event in events])
    fold_items(TURN, "hi", events)
    assert [event.data for event in events] == before


# --- todo, permissions, notices --------------------------------------------------------------


def test_the_todo_list_is_one_item_where_it_first_appeared_as_it_stands() -> None:
    first = {"items": [{"text": "a", "done": False}], "completed": 0, "total": 1}
    last = {"items": [{"text": "a", "done": True}], "completed": 1, "total": 1}
    items = _fold(STARTED, ("todo", first), _text("working"), ("todo", last))
    assert _shape(items) == [
        ("message", "user", 1, 1),
        ("todo", "", 2, 4),
        ("message", "assistant", 3, 3),
    ]
    assert {k: items[1][k] for k in ("items", "completed", "total")} == last
    counts_only = _fold(STARTED, ("todo", {"items": None, "completed": 0, "total": 2}))
    assert counts_only[1]["items"] is None and counts_only[1]["total"] == 2


def test_a_permission_request_carries_its_resolution_once_answered() -> None:
    action = {"id": "implement", "label": "Implement", "behavior": "allow"}
    asked = {
        "permission_id": "p1",
        "name": "MockPlanApproval",
        "kind": "plan",
        "title": "Plan",
        "description": None,
        "input": {"plan": "do it"},
        "actions": [action],
    }
    waiting = _fold(STARTED, ("turn.permission_requested", asked))
    assert waiting[1] == {
        "id": f"{TURN}:2",
        "type": "permission_request",
        **asked,
        "resolution": None,
        "first_seq": 2,
        "last_seq": 2,
    }
    answer = {"permission_id": "p1", "behavior": "deny", "by": "ci", "message": "not now"}
    items = _fold(
        STARTED,
        ("turn.permission_requested", asked),
        ("turn.permission_resolved", answer),
        ("turn.permission_resolved", {"permission_id": "never-asked", "behavior": "allow"}),
        _text("ok"),
    )
    assert items[1]["resolution"] == {"behavior": "deny", "by": "ci", "message": "not now"}
    assert (items[1]["first_seq"], items[1]["last_seq"]) == (2, 3)
    assert _shape(items)[1:] == [("permission_request", "", 2, 3), ("message", "assistant", 5, 5)]
    no_message = _fold(
        STARTED,
        ("turn.permission_requested", asked),
        ("turn.permission_resolved", {"permission_id": "p1", "behavior": "allow", "by": "k"}),
    )
    assert no_message[1]["resolution"] == {"behavior": "allow", "by": "k", "message": None}


def test_a_notice_is_an_item_between_blocks() -> None:
    items = _fold(
        STARTED, _text("a"), ("notice", {"kind": "attention", "text": "look"}), _text("b")
    )
    assert items[2] == {
        "id": f"{TURN}:3",
        "type": "notice",
        "kind": "attention",
        "text": "look",
        "first_seq": 3,
        "last_seq": 3,
    }
    assert _texts(items) == ["a", "b"]


def test_events_without_items_show_nothing() -> None:
    items = _fold(
        STARTED,
        ("turn.queued", {"turn_id": str(TURN)}),
        ("agent.created", {"agent_id": "a"}),
        _text("a"),
        ("turn.cancelling", {"detail": "asked"}),
        _text("b"),
    )
    assert _shape(items) == [("message", "user", 1, 1), ("message", "assistant", 4, 6)]


# --- the end ---------------------------------------------------------------------------------


def test_the_usage_comes_last_from_the_terminal_event() -> None:
    items = _fold(STARTED, _text("a"), _completed(USAGE))
    assert items[-1] == {
        "id": f"{TURN}:3",
        "type": "usage",
        **USAGE,
        "first_seq": 3,
        "last_seq": 3,
    }


def test_the_context_window_is_there_only_when_reported() -> None:
    window = {"context_window_used_tokens": 300, "context_window_max_tokens": 128_000}
    with_window = _fold(STARTED, _completed({**USAGE, **window}))[-1]
    assert {k: with_window[k] for k in window} == window
    unreported = _fold(STARTED, _completed({**USAGE, "context_window_used_tokens": None}))[-1]
    assert not set(window) & set(unreported)
    partial = _fold(STARTED, _completed({"output_tokens": 4}))[-1]
    assert (partial["input_tokens"], partial["output_tokens"], partial["cost_usd"]) == (
        None,
        4,
        None,
    )


@pytest.mark.parametrize("name", ["turn.failed", "turn.cancelled", "turn.interrupted"])
def test_a_turn_without_usage_has_no_usage_item(name: str) -> None:
    ending = (name, {**_completed()[1], "status": name.removeprefix("turn.")})
    items = _fold(STARTED, _text("a"), ending)
    assert [i["type"] for i in items] == ["message", "message"]


def test_a_running_turn_is_its_items_so_far_and_grows_the_same_way() -> None:
    events = _events(STARTED, _text("a"), _tool("c", "running"), _text("b"), _tool("c", "done"))
    so_far = fold_items(TURN, "hi", events[:3])
    whole = fold_items(TURN, "hi", events)
    assert [i["id"] for i in so_far] == [i["id"] for i in whole[:3]]  # ids are stable
    assert so_far[2]["status"] == "running" and whole[2]["status"] == "done"


def test_every_shape_is_what_the_response_model_says() -> None:
    """Folded items go through the route's pydantic model unchanged (optional keys absent)."""
    asked = {
        "permission_id": "p1",
        "name": "Bash",
        "kind": "tool",
        "title": None,
        "description": None,
        "input": None,
        "actions": [],
    }
    started = ("turn.started", {**STARTED[1], "images": [{"media_type": "image/png", "bytes": 9}]})
    items = _fold(
        started,
        _reasoning("r"),
        _tool("c1", "running", {"command": "ls"}),
        ("todo", {"items": [{"text": "t", "done": False}], "completed": 0, "total": 1}),
        ("turn.permission_requested", asked),
        ("turn.permission_resolved", {"permission_id": "p1", "behavior": "allow", "by": "k"}),
        ("notice", {"kind": "error", "text": "boom"}),
        _text("done"),
        _completed(USAGE),
    )
    body = {"turn_id": TURN, "session_id": TURN, "status": "completed", "last_seq": 9}
    out = TurnItemsOut.model_validate({**body, "items": items}).model_dump(mode="json")
    assert out["items"] == items
    assert [i["type"] for i in out["items"]] == [
        "message",
        "reasoning",
        "tool_call",
        "todo",
        "permission_request",
        "notice",
        "message",
        "usage",
    ]


# --- from storage ----------------------------------------------------------------------------


async def _stored_turn(
    db: Database, events: list[tuple[str, dict[str, Any]]], *, status: str = TurnStatus.RUNNING
) -> tuple[uuid.UUID, uuid.UUID]:
    async with db.session() as session:
        record = await sessions_repo.add_session(session, provider="mock", cwd="/tmp")
        turn = await turns_repo.add_turn(
            session, session_id=record.id, prompt="the prompt", status=status
        )
        numbered = [(seq, name, data) for seq, (name, data) in enumerate(events, start=1)]
        await events_repo.append_events(session, turn.id, numbered)
    return record.id, turn.id


async def test_read_from_storage_pages_through_every_event(database: Database) -> None:
    deltas = [_text(f"{n} ") for n in range(READ_PAGE_SIZE + 5)]
    session_id, turn_id = await _stored_turn(database, [STARTED, *deltas, _tool("c", "running")])
    async with database.read() as reads:
        read = await read_turn_items(reads, session_id, turn_id, None)
    assert (read.turn_id, read.session_id, read.status) == (turn_id, session_id, "running")
    assert read.last_seq == len(deltas) + 2
    assert _shape(read.items) == [
        ("message", "user", 1, 1),
        ("message", "assistant", 2, len(deltas) + 1),
        ("tool_call", "", len(deltas) + 2, len(deltas) + 2),
    ]
    assert _texts(read.items, "user") == ["the prompt"]
    assert _texts(read.items)[0] == "".join(d[1]["delta"] for d in deltas)


async def test_a_terminal_event_stored_after_the_turn_row_was_read_gives_the_status(
    database: Database,
) -> None:
    """The row says `running`, its terminal event is stored: the event's status wins."""
    session_id, turn_id = await _stored_turn(database, [STARTED, _text("a"), _completed(USAGE)])
    async with database.read() as reads:
        read = await read_turn_items(reads, session_id, turn_id, None)
    assert read.status == "completed" and read.items[-1]["type"] == "usage"


async def test_another_sessions_turn_or_no_session_is_not_found(database: Database) -> None:
    session_id, turn_id = await _stored_turn(database, [STARTED])
    other_id, _ = await _stored_turn(database, [STARTED])
    async with database.read() as reads:
        with pytest.raises(TurnNotFound):
            await read_turn_items(reads, other_id, turn_id, None)
        with pytest.raises(SessionNotFound):
            await read_turn_items(reads, uuid.uuid4(), turn_id, None)
        read = await read_turn_items(reads, session_id, turn_id, None)
    assert read.last_seq == 1 and len(read.items) == 1
