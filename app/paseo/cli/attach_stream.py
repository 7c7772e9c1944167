"""Parsing what `paseo attach` prints into turn events.

`attach` writes assistant text raw (no added newlines) and every other timeline item as a line
of its own, `console.log("\\n[Kind] ...")`, so an item is "\\n[Kind] ...\\n". Only those exact
markers are taken out of the text; anything else, a markdown link included, stays text.

A known ambiguity, not resolved here: a reasoning item whose text holds a newline prints as
"\\n[Reasoning] one\\ntwo\\n", which is also how a reasoning line followed by the reply text
"two\\n" prints. The line ends at its first newline, so "two" is taken for reply text (the
mock's reasoning has no newline; a model's thinking may).
"""

from __future__ import annotations

import codecs
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from app.paseo.prompts import recorded_forms
from app.paseo.tool_calls import kind_of_name
from app.paseo.types import (
    AgentNotice,
    ReasoningDelta,
    TextDelta,
    TodoUpdate,
    ToolActivity,
    TurnEvent,
)

HEADER_END = "(Press Ctrl+C to detach)\n\n"
USER_MARKER = "\n[User] "

_MARKERS = (
    "\n[Reasoning] ",
    "\n[Tool: ",
    "\n[Todo] ",
    USER_MARKER,
    "\n[Permission ",
    "\n[Attention Required: ",
    "\n[Error] ",
    "\n[Turn Failed] ",
)


@dataclass(frozen=True)
class PromptSeen:
    """A `[User]` line: where a turn begins (its text, when it could be read whole)."""

    text: str


ParsedItem = TurnEvent | PromptSeen

_TOOL_LINE = re.compile(r"^\[Tool: (?P<name>.*?)\] (?P<status>.*)$")
_TODO_LINE = re.compile(r"^\[Todo\] (?P<done>\d+)/(?P<total>\d+) completed$")
_TERMINAL_TOOL_STATES = frozenset({"completed", "failed", "canceled"})
_PERMISSION_RESOLVED = re.compile(r"^\[Permission (?P<behavior>allow|deny)\]$")


class AttachParser:
    """Incremental parser: feed it stdout chunks, get events; it holds back partial markers.

    `prompt` is the prompt of the turn being followed: its `[User]` line may span several lines,
    so knowing the text (as Paseo records it: see `recorded_forms`, `first`) lets the parser
    skip it whole.
    """

    def __init__(
        self, prompt: str, *, expect_header: bool = True, first: bool | None = None
    ) -> None:
        self._forms = recorded_forms(prompt, first=first)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._header_seen = not expect_header
        self._pending_description = False
        self._calls = CallIds()
        self.user_lines_seen = 0

    @property
    def header_seen(self) -> bool:
        return self._header_seen

    def feed(self, data: bytes) -> list[ParsedItem]:
        self._buffer += self._decoder.decode(data)
        return list(self._drain(final=False))

    def finish(self) -> list[ParsedItem]:
        """Flush what is left when the stream has ended."""
        self._buffer += self._decoder.decode(b"", final=True)
        return list(self._drain(final=True))

    def _drain(self, *, final: bool) -> Iterator[ParsedItem]:
        if not self._header_seen:
            end = self._buffer.find(HEADER_END)
            if end < 0:
                return
            self._buffer = self._buffer[end + len(HEADER_END) :]
            self._header_seen = True
        while self._buffer:
            event_or_wait = self._next(final=final)
            if event_or_wait is None:
                return
            if not isinstance(event_or_wait, _Skipped):
                yield event_or_wait

    def _next(self, *, final: bool) -> _Step:
        """One item from the front of the buffer; None means: need more data."""
        buffer = self._buffer
        if self._pending_description and buffer.startswith("  "):
            return self._take_line(0, lambda text: AgentNotice("permission", text.strip()), final)
        self._pending_description = False
        marker_at = _find_marker(buffer)
        if marker_at > 0 or (marker_at < 0 and buffer):
            hold = 0 if final else _partial_marker_suffix(buffer)
            end = marker_at if marker_at > 0 else len(buffer) - hold
            if end <= 0:
                return None
            self._buffer = buffer[end:]
            return TextDelta(buffer[:end])
        return self._item_at_front(final)

    def _item_at_front(self, final: bool) -> _Step:
        if self._buffer.startswith(USER_MARKER):
            return self._take_user_line(final)
        return self._take_line(1, _item_event, final)

    def _take_user_line(self, final: bool) -> PromptSeen | None:
        body = self._buffer[len(USER_MARKER) :]
        for form in self._forms:  # attach prints the recorded text, then a newline
            if body.startswith(form + "\n"):
                self._buffer = body[len(form) + 1 :]
                self.user_lines_seen += 1
                return PromptSeen(form)
        if not final and any((form + "\n").startswith(body) for form in self._forms):
            return None  # the prompt is still arriving
        newline = body.find("\n")
        if newline < 0:
            if not final:
                return None
            newline = len(body)
        self._buffer = body[newline + 1 :]
        self.user_lines_seen += 1
        return PromptSeen(body[:newline])

    def _take_line(self, skip: int, build: Callable[[str], TurnEvent | None], final: bool) -> _Step:
        newline = self._buffer.find("\n", skip)
        if newline < 0:
            if not final:
                return None
            newline = len(self._buffer)
        line = self._buffer[skip:newline]
        self._buffer = self._buffer[newline + 1 :]
        event = build(line)
        if isinstance(event, ToolActivity):
            event = self._calls.identify(event)
        if isinstance(event, AgentNotice) and event.kind == "permission" and skip:
            self._pending_description = True
        return event if event is not None else _SKIPPED


class CallIds:
    """Call ids for the tool lines of one attach, which prints none: a call's terminal line
    takes the id of the running line of the same name before it, if any.

    Ids are unique per parser (a random prefix), not Paseo's: a line `attach` merged away
    (live output keeps only a call's latest state per 60 ms) leaves a call with one line.
    """

    def __init__(self) -> None:
        self._prefix = f"cli-{secrets.token_hex(4)}"
        self._count = 0
        self._running: dict[str, str] = {}

    def identify(self, event: ToolActivity) -> ToolActivity:
        if event.status in _TERMINAL_TOOL_STATES:
            call_id = self._running.pop(event.name, None) or self._next()
        else:
            call_id = self._running.get(event.name) or self._next()
            self._running[event.name] = call_id
        return replace(event, call_id=call_id)

    def _next(self) -> str:
        self._count += 1
        return f"{self._prefix}-{self._count}"


class _Skipped:
    """A line the parser read that stands for no event (an unknown marker)."""


_SKIPPED = _Skipped()
_Step = ParsedItem | _Skipped | None


def _item_event(line: str) -> TurnEvent | None:
    """The event for one marker line (without its leading newline)."""
    if line.startswith("[Reasoning] "):
        return ReasoningDelta(line[len("[Reasoning] ") :])
    if line.startswith("[Tool: "):
        return tool_line(line)
    if line.startswith("[Todo] "):
        return todo_line(line)
    if match := _PERMISSION_RESOLVED.match(line):
        return AgentNotice("permission_resolved", match["behavior"])
    if line.startswith("[Permission Required] "):
        return AgentNotice("permission", line[len("[Permission Required] ") :])
    if line.startswith("[Attention Required: "):
        return AgentNotice("attention", line[len("[Attention Required: ") :].rstrip("]"))
    if line.startswith("[Error] "):
        return AgentNotice("error", line[len("[Error] ") :])
    if line.startswith("[Turn Failed] "):
        return AgentNotice("turn_failed", line[len("[Turn Failed] ") :])
    return None


def tool_line(line: str) -> ToolActivity | None:
    """`[Tool: <name>] <status>` as a tool event: all `attach` prints of a call, so no
    detail, no error and no call id (`CallIds` gives one); the kind comes from the name."""
    match = _TOOL_LINE.match(line)
    if match is None:
        return None
    name = match["name"]
    return ToolActivity(name=name, status=match["status"], kind=kind_of_name(name))


def todo_line(line: str) -> TodoUpdate | None:
    """`[Todo] <done>/<total> completed`: the counts only (attach prints no items)."""
    match = _TODO_LINE.match(line)
    if match is None:
        return None
    return TodoUpdate(completed=int(match["done"]), total=int(match["total"]))


def _find_marker(buffer: str) -> int:
    positions = [at for marker in _MARKERS if (at := buffer.find(marker)) >= 0]
    return min(positions, default=-1)


def _partial_marker_suffix(buffer: str) -> int:
    """Length of the longest buffer suffix that could be the start of a marker."""
    longest = 0
    for marker in _MARKERS:
        for size in range(min(len(marker), len(buffer)), longest, -1):
            if buffer.endswith(marker[:size]):
                longest = size
                break
    return longest
