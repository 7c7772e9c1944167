"""The attach parser against recorded `paseo attach` output and hand-made edge cases."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.paseo.cli.attach_stream import AttachParser, ParsedItem
from app.paseo.cli.transcript import last_reply
from app.paseo.types import (
    AgentNotice,
    ReasoningDelta,
    TextDelta,
    TodoUpdate,
    ToolActivity,
    TurnEvent,
)
from tests.samples import process_output, stream_sample

HEADER = b"Attaching to agent 78eb043...\n(Press Ctrl+C to detach)\n\n"


def _parse(chunks: list[bytes], prompt: str = "write a haiku") -> list[TurnEvent]:
    parser = AttachParser(prompt)
    events = [event for chunk in chunks for event in parser.feed(chunk)]
    return events + parser.finish()


def _text(events: list[TurnEvent]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


def _recorded_live_turn() -> tuple[list[bytes], str]:
    """The attach chunks of the ten-second turn after its `[User]` line, and its logs."""
    rows = stream_sample("ten-second-turn")
    send_started = next(row["t"] for row in rows if row.get("start"))
    attach = process_output(rows, "attach")
    live = [row["data"].encode() for row in attach if row["t"] > send_started]
    # What arrived after SIGTERM is the detach message, not agent output.
    live = [chunk for chunk in live if b"Detaching from agent" not in chunk]
    logs = "".join(row["data"] for row in process_output(rows, "logs"))
    return live, logs


def test_recorded_turn_text_matches_logs_reply() -> None:
    live, logs = _recorded_live_turn()
    parser = AttachParser("write a haiku", expect_header=False)
    events = [event for chunk in live for event in parser.feed(chunk)] + parser.finish()
    reply = last_reply(logs, "write a haiku")
    assert reply is not None and len(reply) > 6000
    # attach keeps the closing newline that the transcript trims
    assert _text(events) == reply + "\n"
    assert parser.user_lines_seen == 1


def test_recorded_turn_has_reasoning_and_tools() -> None:
    live, _ = _recorded_live_turn()
    parser = AttachParser("write a haiku", expect_header=False)
    events = [event for chunk in live for event in parser.feed(chunk)] + parser.finish()
    tools = [event for event in events if isinstance(event, ToolActivity)]
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    assert ("edit", "running", "edit") in [(t.name, t.status, t.kind) for t in tools]
    assert {(t.name, t.kind) for t in tools} >= {("bash", "shell"), ("grep", "search")}
    assert all(t.detail == {} and t.error is None and t.call_id for t in tools)
    assert {tool.name for tool in tools} == {"read", "grep", "edit", "bash"}
    assert reasoning.startswith("Need to find the scroll container")
    assert "[Reasoning]" not in _text(events)
    assert "[Tool:" not in _text(events)


def test_chunk_boundaries_do_not_change_the_result() -> None:
    live, _ = _recorded_live_turn()
    whole = b"".join(live)
    one_byte_chunks = [whole[i : i + 1] for i in range(len(whole))]
    parser_a = AttachParser("write a haiku", expect_header=False)
    parser_b = AttachParser("write a haiku", expect_header=False)
    events_a = [e for chunk in live for e in parser_a.feed(chunk)] + parser_a.finish()
    events_b = [e for chunk in one_byte_chunks for e in parser_b.feed(chunk)] + parser_b.finish()
    assert _text(events_a) == _text(events_b)
    assert _without_call_ids(events_a) == _without_call_ids(events_b)


def _without_call_ids(events: list[ParsedItem]) -> list[ParsedItem]:
    """The non-text events, tool calls without their ids (each parser makes its own)."""
    return [
        replace(e, call_id=None) if isinstance(e, ToolActivity) else e
        for e in events
        if not isinstance(e, TextDelta)
    ]


def test_header_and_replay_of_a_new_agent() -> None:
    events = _parse([HEADER, b"\n[User] write a haiku\nhello", b" world"])
    assert _text(events) == "hello world"


def test_multiline_prompt_is_skipped_whole() -> None:
    prompt = "line one\n[Tool: fake] completed\nline three"
    events = _parse([HEADER, b"\n[User] " + prompt.encode() + b"\nanswer"], prompt)
    assert _text(events) == "answer"
    assert not any(isinstance(e, ToolActivity) for e in events)


def test_a_later_prompt_is_skipped_as_sent_a_first_one_as_trimmed() -> None:
    """Recorded from the real daemon: `send` keeps a prompt's trailing newline, so attach
    prints `[User] <text>\\n` and then the newline of console.log; create trims it."""
    prompt = "emit 2 coalesced agent stream updates\nsecond line of the prompt\n"
    replay = b"\n[User] " + prompt.encode() + b"\nstress-update-0stress-update-1"
    for first in (False, None):  # a later prompt, or not known which (a resumed turn)
        parser = AttachParser(prompt, expect_header=False, first=first)
        assert _text(parser.feed(replay) + parser.finish()) == "stress-update-0stress-update-1"
    trimmed = b"\n[User] " + prompt.strip().encode() + b"\nanswer"
    for first in (True, None):
        parser = AttachParser(prompt, expect_header=False, first=first)
        assert _text(parser.feed(trimmed) + parser.finish()) == "answer"


def test_markdown_link_at_line_start_stays_text() -> None:
    events = _parse([HEADER, b"\n[User] write a haiku\nsee\n[docs](http://x)\n"])
    assert _text(events) == "see\n[docs](http://x)\n"


def test_permission_and_todo_lines() -> None:
    chunks = [
        HEADER,
        b"\n[User] write a haiku\n",
        b"\n[Permission Required] MockPlanApproval\n  Review the plan.\n",
        b"\n[Todo] 1/3 completed\n",
        b"\n[Permission allow]\n",
        b"\n[Attention Required: permission]\n",
    ]
    notices = [e for e in _parse(chunks) if isinstance(e, AgentNotice | TodoUpdate)]
    assert notices == [
        AgentNotice("permission", "MockPlanApproval"),
        AgentNotice("permission", "Review the plan."),
        TodoUpdate(completed=1, total=3),
        AgentNotice("permission_resolved", "allow"),
        AgentNotice("attention", "permission"),
    ]


@pytest.mark.parametrize("split", [1, 2, 3, 5, 8])
def test_utf8_split_inside_a_character(split: int) -> None:
    body = "\n[User] write a haiku\nnaïve — 東京 ✓".encode()
    chunks = [HEADER] + [body[i : i + split] for i in range(0, len(body), split)]
    assert _text(_parse(chunks)) == "naïve — 東京 ✓"


@pytest.mark.parametrize(
    "prompt",
    [
        "emit 2 coalesced agent stream updates\nsecond line of the prompt\n",
        "write a haiku\n",
        "  \twrite a haiku\ufeff",
    ],
)
def test_the_user_item_shows_the_prompt_trimmed(prompt: str) -> None:
    """Paseo echoes the prompt trimmed: the whole `[User]` item is skipped, no line of it is
    taken for the agent's text."""
    shown = prompt.strip(" \t\n\ufeff")
    events = _parse([HEADER, f"\n[User] {shown}\n".encode(), b"the answer"], prompt)
    assert _text(events) == "the answer"
