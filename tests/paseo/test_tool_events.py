"""Tool calls, todos and reasoning in the gateway's own terms: the pure translations of each
transport (daemon wire, CLI attach lines), the size cap, the stored event shapes, and the CLI
transport's resume that must not stream reasoning twice."""

from __future__ import annotations

from typing import Any

import pytest

from app.paseo.cli.attach_stream import AttachParser, CallIds, todo_line, tool_line
from app.paseo.cli.reply import Reply, format_cursor, parse_cursor
from app.paseo.daemon import wire
from app.paseo.tool_calls import MAX_TOOL_FIELD_BYTES, capped, capped_detail, kind_of_name
from app.paseo.types import (
    ReasoningDelta,
    TextDelta,
    TodoItem,
    TodoUpdate,
    ToolActivity,
    TurnEvent,
)
from app.services.turn.run import stream_event

# What the real mock provider (mock-load-test-agent.ts, buildCycleQueue) puts in its calls.
MOCK_SHELL = {
    "type": "shell",
    "command": "node scripts/simulate-stream-burst.mjs",
    "cwd": "/tmp/paseo-mock-load",
    "output": "[burst] tick 1 userIsAtBottom=true\n",
    "exitCode": 0,
}
MOCK_EDIT = {
    "type": "edit",
    "filePath": "packages/app/src/hooks/use-scroll-anchor.ts",
    "oldString": "const NEAR_BOTTOM_PX = 80;",
    "newString": "const NEAR_BOTTOM_PX = 160;",
    "unifiedDiff": "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b",
}


def _tool_item(name: str, detail: Any, status: str = "completed", **more: Any) -> dict[str, Any]:
    return {
        "type": "tool_call",
        "callId": f"t:{name}:1",
        "name": name,
        "status": status,
        "error": None,
        "detail": detail,
        **more,
    }


# --- daemon: Paseo's detail as the gateway's ---------------------------------------------------


def test_shell_detail_is_snake_case_with_exit_code() -> None:
    assert wire.tool_detail("bash", MOCK_SHELL) == (
        "shell",
        {
            "command": "node scripts/simulate-stream-burst.mjs",
            "cwd": "/tmp/paseo-mock-load",
            "output": "[burst] tick 1 userIsAtBottom=true\n",
            "exit_code": 0,
        },
    )


def test_edit_detail_has_path_strings_and_diff() -> None:
    kind, detail = wire.tool_detail("edit", MOCK_EDIT)
    assert kind == "edit"
    assert detail == {
        "path": "packages/app/src/hooks/use-scroll-anchor.ts",
        "old_string": "const NEAR_BOTTOM_PX = 80;",
        "new_string": "const NEAR_BOTTOM_PX = 160;",
        "diff": "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b",
    }


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("read", {"type": "read", "filePath": "a.ts"}, ("read", {"path": "a.ts"})),
        (
            "read",
            {"type": "read", "filePath": "a.ts", "content": "x", "offset": 3},
            ("read", {"path": "a.ts", "content": "x"}),
        ),
        (
            "Write",
            {"type": "write", "filePath": "b", "content": "y"},
            ("write", {"path": "b", "content": "y"}),
        ),
        (
            "grep",
            {"type": "search", "query": "scrollToEnd", "toolName": "grep", "numFiles": 2},
            ("search", {"query": "scrollToEnd"}),
        ),
        ("ExitPlanMode", {"type": "plan", "text": "1. do"}, ("plan", {"content": "1. do"})),
        ("WebFetch", {"type": "fetch", "url": "https://x"}, ("other", {"url": "https://x"})),
        ("Task", {"type": "sub_agent", "log": "..."}, ("other", {})),
        ("bash", {"type": "unknown", "input": {}, "output": None}, ("shell", {})),
        ("mystery", None, ("other", {})),
        ("edit", {"type": "edit", "filePath": "p"}, ("edit", {"path": "p"})),  # only what applies
        (
            "bash",
            {"type": "shell", "command": "ls", "exitCode": None},
            ("shell", {"command": "ls"}),
        ),
    ],
)
def test_each_detail_type_keeps_only_its_keys(
    name: str, raw: Any, expected: tuple[str, dict[str, Any]]
) -> None:
    assert wire.tool_detail(name, raw) == expected


def test_a_tool_call_item_is_one_state_of_one_call() -> None:
    event = wire.tool_call(_tool_item("bash", MOCK_SHELL, "running"), "timeline:E:7")
    assert event.call_id == "t:bash:1" and event.name == "bash" and event.status == "running"
    assert event.kind == "shell" and event.detail["exit_code"] == 0
    assert event.error is None and event.cursor == "timeline:E:7"
    failed = wire.tool_call(
        _tool_item("bash", {"type": "shell", "command": "false"}, "failed", error="exit 1")
    )
    assert failed.status == "failed" and failed.error == "exit 1"


def test_large_fields_are_capped_and_marked() -> None:
    big = "x" * (MAX_TOOL_FIELD_BYTES * 4)
    event = wire.tool_call(_tool_item("read", {"type": "read", "filePath": "f", "content": big}))
    assert len(event.detail["content"].encode()) == MAX_TOOL_FIELD_BYTES
    assert event.detail["truncated"] is True and event.detail["path"] == "f"
    small = wire.tool_call(_tool_item("read", {"type": "read", "filePath": "f", "content": "x"}))
    assert "truncated" not in small.detail


def test_the_cap_never_cuts_a_character_in_two() -> None:
    text = "é" * MAX_TOOL_FIELD_BYTES  # two bytes each
    cut, was_cut = capped(text)
    assert was_cut and cut == "é" * (MAX_TOOL_FIELD_BYTES // 2)
    assert capped("short") == ("short", False)
    assert capped_detail({"a": "x" * (MAX_TOOL_FIELD_BYTES + 1), "n": 1})["truncated"] is True


def test_a_todo_item_is_the_whole_list() -> None:
    item = {"type": "todo", "items": [{"text": "a", "completed": True}, {"text": "b"}]}
    assert wire.todo_update(item, "c") == TodoUpdate(
        completed=1, total=2, items=(TodoItem("a", True), TodoItem("b", False)), cursor="c"
    )


def test_turn_output_reads_tool_and_todo_rows() -> None:
    tool = wire.stream_event(
        {
            "agentId": "a",
            "epoch": "E",
            "seq": 3,
            "event": {"type": "timeline", "item": _tool_item("edit", MOCK_EDIT)},
        }
    )
    todo = wire.stream_event(
        {
            "agentId": "a",
            "epoch": "E",
            "seq": 4,
            "event": {"type": "timeline", "item": {"type": "todo", "items": []}},
        }
    )
    assert tool is not None and todo is not None
    output = wire.turn_output(tool)
    assert isinstance(output, ToolActivity) and output.detail["path"].endswith("anchor.ts")
    assert output.cursor == "timeline:E:3"
    assert wire.turn_output(todo) == TodoUpdate(0, 0, (), "timeline:E:4")


# --- CLI: what attach prints ------------------------------------------------------------------


def test_a_cli_tool_line_has_name_status_and_kind_only() -> None:
    assert tool_line("[Tool: bash] completed") == ToolActivity("bash", "completed", kind="shell")
    assert tool_line("[Tool: grep] running") == ToolActivity("grep", "running", kind="search")
    assert tool_line("[Tool: Frobnicate] running") == ToolActivity("Frobnicate", "running")
    assert tool_line("[Tool: bash]") is None


def test_a_cli_todo_line_has_the_counts() -> None:
    assert todo_line("[Todo] 2/5 completed") == TodoUpdate(completed=2, total=5)
    assert todo_line("[Todo] soon") is None


def test_cli_call_ids_pair_a_running_line_with_its_end() -> None:
    ids = CallIds()
    running = ids.identify(ToolActivity("edit", "running"))
    done = ids.identify(ToolActivity("edit", "completed"))
    alone = ids.identify(ToolActivity("read", "completed"))
    again = ids.identify(ToolActivity("edit", "completed"))
    assert running.call_id == done.call_id
    assert len({done.call_id, alone.call_id, again.call_id}) == 3


def test_the_attach_parser_gives_tool_lines_call_ids() -> None:
    parser = AttachParser("p", expect_header=False)
    events = parser.feed(b"\n[User] p\n\n[Tool: edit] running\n\n[Tool: edit] completed\n")
    tools = [event for event in events if isinstance(event, ToolActivity)]
    assert [t.status for t in tools] == ["running", "completed"]
    assert tools[0].call_id == tools[1].call_id is not None


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("bash", "shell"),
        ("Read", "read"),
        ("MultiEdit", "edit"),
        ("write", "write"),
        ("Glob", "search"),
        ("TodoWrite", "plan"),
        ("mcp__x", "other"),
    ],
)
def test_kind_of_a_tool_name(name: str, kind: str) -> None:
    assert kind_of_name(name) == kind


# --- what is stored and streamed ---------------------------------------------------------------


def test_a_tool_event_is_the_gateway_shape() -> None:
    event = wire.tool_call(_tool_item("bash", MOCK_SHELL))
    name, data = stream_event(event)
    assert name == "tool"
    assert data == {
        "call_id": "t:bash:1",
        "name": "bash",
        "status": "completed",
        "kind": "shell",
        "detail": {
            "command": "node scripts/simulate-stream-burst.mjs",
            "cwd": "/tmp/paseo-mock-load",
            "output": "[burst] tick 1 userIsAtBottom=true\n",
            "exit_code": 0,
        },
        "error": None,
    }
    assert not any(key[0].isupper() or any(c.isupper() for c in key) for key in data["detail"])


def test_a_todo_event_lists_items_or_only_counts() -> None:
    full = TodoUpdate(1, 2, (TodoItem("a", True), TodoItem("b", False)))
    assert stream_event(full) == (
        "todo",
        {
            "items": [{"text": "a", "done": True}, {"text": "b", "done": False}],
            "completed": 1,
            "total": 2,
        },
    )
    assert stream_event(TodoUpdate(1, 2)) == ("todo", {"items": None, "completed": 1, "total": 2})


# --- CLI resume: reasoning streams once -------------------------------------------------------


def _shown(reply: Reply, events: list[TurnEvent]) -> list[Any]:
    out = []
    for event in events:
        assert isinstance(event, TextDelta | ReasoningDelta | ToolActivity)
        shown = reply.take(event)
        if shown is not None:
            out.append(shown)
    return out


def test_reasoning_stored_before_any_text_is_not_streamed_again_on_resume() -> None:
    """A model that thinks first: before, the CLI cursor counted text only, so a turn that
    had stored only reasoning got its whole reasoning (and tools) again after a restart."""
    before = Reply()
    first = _shown(
        before,
        [ReasoningDelta("Need to "), ReasoningDelta("think"), ToolActivity("read", "completed")],
    )
    cursor = first[-1].cursor
    assert parse_cursor(cursor).reasoning == len("Need to think")
    # attach replays the turn with each reasoning run merged into one line
    replayed: list[TurnEvent] = [
        ReasoningDelta("Need to think"),
        ToolActivity("read", "completed"),
        ReasoningDelta(" more"),
        TextDelta("Hello"),
    ]
    after = Reply()
    assert after.resume(replayed, cursor)
    shown = _shown(after, replayed)
    assert [type(e) for e in shown] == [ReasoningDelta, TextDelta]
    assert shown[0].text == " more" and shown[1].text == "Hello"
    assert shown[1].cursor == format_cursor(5, len("Need to think more"))


def test_resume_passes_over_stored_text_and_reasoning() -> None:
    replayed: list[TurnEvent] = [
        TextDelta("ab"),
        ReasoningDelta("xyz"),
        ToolActivity("bash", "completed"),
        TextDelta("cd"),
        ReasoningDelta("w"),
    ]
    reply = Reply()
    assert reply.resume(replayed, format_cursor(2, 3))
    shown = _shown(reply, replayed)
    assert shown == [TextDelta("cd", format_cursor(4, 3)), ReasoningDelta("w", format_cursor(4, 4))]


def test_an_old_text_cursor_still_resumes() -> None:
    """`text:<n>` from before reasoning was counted: non-text shows only past the text."""
    assert parse_cursor("text:2").reasoning is None and parse_cursor("text:2").found
    assert not parse_cursor(None).found and not parse_cursor("timeline:E:1").found
    replayed: list[TurnEvent] = [TextDelta("ab"), ReasoningDelta("r"), TextDelta("c")]
    reply = Reply()
    assert reply.resume(replayed, "text:2")
    assert [getattr(e, "text", None) for e in _shown(reply, replayed)] == ["c"]


def test_a_resume_that_cannot_line_up_goes_on_counting() -> None:
    reply = Reply()
    assert not reply.resume([TextDelta("a")], format_cursor(5, 2))
    assert reply.take(TextDelta("z")) == TextDelta("z", format_cursor(6, 2))
