"""Reading an agent's timeline rows (`fetch_agent_timeline_response` entries): pure functions.

Recovery and resumption decide from these: which prompts Paseo recorded, and what the agent
answered after the latest one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.paseo.prompts import recorded_prompt
from app.paseo.types import PromptHistory


@dataclass(frozen=True)
class Row:
    """One canonical timeline row: its seq and item."""

    seq: int
    item: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.item.get("type", ""))


def rows_of(entries: Sequence[dict[str, Any]]) -> list[Row]:
    """Canonical entries (one row each) in seq order; entries without an item are skipped."""
    rows = [
        Row(int(entry.get("seqStart", entry.get("seqEnd", 0))), entry["item"])
        for entry in entries
        if isinstance(entry.get("item"), dict)
    ]
    return sorted(rows, key=lambda row: row.seq)


def _last_prompt_index(rows: Sequence[Row]) -> int | None:
    for index in range(len(rows) - 1, -1, -1):
        if rows[index].kind == "user_message":
            return index
    return None


def reply_after(rows: Sequence[Row], index: int) -> str:
    """The assistant text after row `index`, up to the next user message."""
    texts: list[str] = []
    for row in rows[index + 1 :]:
        if row.kind == "user_message":
            break
        if row.kind == "assistant_message":
            texts.append(str(row.item.get("text", "")))
    return "".join(texts)


def prompt_history(rows: Sequence[Row], prompt: str) -> PromptHistory:
    """What the timeline records of `prompt`, as Paseo trims it."""
    recorded = recorded_prompt(prompt)
    prompts = [row for row in rows if row.kind == "user_message"]
    times = sum(1 for row in prompts if row.item.get("text") == recorded)
    latest = _last_prompt_index(rows)
    latest_is_this = latest is not None and rows[latest].item.get("text") == recorded
    reply = reply_after(rows, latest) if latest is not None and latest_is_this else ""
    return PromptHistory(
        times_recorded=times, latest_is_this_prompt=latest_is_this, latest_reply=reply or None
    )


@dataclass(frozen=True)
class TurnSoFar:
    """Where a running turn of `prompt` stands in the timeline."""

    found: bool  # the latest prompt is this one
    text: str  # its reply so far
    last_seq: int  # the last row seen (the cursor to follow from)


def turn_so_far(rows: Sequence[Row], prompt: str) -> TurnSoFar:
    latest = _last_prompt_index(rows)
    last_seq = rows[-1].seq if rows else 0
    if latest is None or rows[latest].item.get("text") != recorded_prompt(prompt):
        return TurnSoFar(False, "", last_seq)
    return TurnSoFar(True, reply_after(rows, latest), last_seq)
