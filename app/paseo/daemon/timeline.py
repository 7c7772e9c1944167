"""Reading an agent's timeline rows (`fetch_agent_timeline_response` entries): pure functions.

Recovery and resumption decide from these: which prompts Paseo recorded, and what the agent
answered after the latest one. A prompt the gateway sent carries its turn's id as message id,
so it is found by that key; text matching is only the fallback for prompts without one.
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


def _is_prompt(row: Row, prompt: str, key: str | None) -> bool:
    """Whether `row` is Paseo's record of the prompt: by its message id when the turn has a
    key (an exact fact), else by its text as Paseo trims it."""
    if row.kind != "user_message":
        return False
    if key is not None:
        return row.item.get("messageId") == key
    return row.item.get("text") == recorded_prompt(prompt)


def prompt_history(rows: Sequence[Row], prompt: str, key: str | None = None) -> PromptHistory:
    """What the timeline records of the prompt (sent with message id `key`, if given)."""
    times = sum(1 for row in rows if _is_prompt(row, prompt, key))
    latest = _last_prompt_index(rows)
    latest_is_this = latest is not None and _is_prompt(rows[latest], prompt, key)
    reply = reply_after(rows, latest) if latest is not None and latest_is_this else ""
    return PromptHistory(
        times_recorded=times,
        latest_is_this_prompt=latest_is_this,
        latest_reply=reply or None,
        by_turn_key=key is not None,
    )


@dataclass(frozen=True)
class TurnSoFar:
    """Where a running turn stands in the timeline."""

    found: bool  # the latest prompt is this turn's
    text: str  # its reply so far
    last_seq: int  # the last row seen (the cursor to follow from)


def turn_so_far(rows: Sequence[Row], prompt: str, key: str | None = None) -> TurnSoFar:
    latest = _last_prompt_index(rows)
    last_seq = rows[-1].seq if rows else 0
    if latest is None or not _is_prompt(rows[latest], prompt, key):
        return TurnSoFar(False, "", last_seq)
    return TurnSoFar(True, reply_after(rows, latest), last_seq)
