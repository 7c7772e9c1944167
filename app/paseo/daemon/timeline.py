"""Reading an agent's timeline rows (`fetch_agent_timeline_response` entries): pure functions.

Recovery and resumption decide from these: which prompts Paseo recorded, and what the agent
answered after the latest one. A prompt the gateway sent carries its turn's id as message id,
so it is found by that key; text matching is only the fallback for prompts without one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.paseo.prompts import recorded_forms
from app.paseo.types import PromptHistory

_CURSOR_PREFIX = "timeline:"


def format_cursor(epoch: str, seq: int) -> str:
    """A turn's resume cursor on this transport: the timeline's epoch and the row's seq."""
    return f"{_CURSOR_PREFIX}{epoch}:{seq}"


def parse_cursor(cursor: str | None) -> tuple[str, int] | None:
    """`format_cursor`'s (epoch, seq); None for no cursor or another transport's (a turn
    begun on the CLI transport is then resumed from its prompt)."""
    if cursor is None or not cursor.startswith(_CURSOR_PREFIX):
        return None
    epoch, _, seq = cursor.removeprefix(_CURSOR_PREFIX).rpartition(":")
    if not epoch or not seq.isdigit():
        return None
    return epoch, int(seq)


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


def _is_prompt(row: Row, prompt: str, key: str | None) -> bool:
    """Whether `row` is Paseo's record of the prompt: by its message id when the turn has a
    key (an exact fact), else by its text as Paseo records it."""
    if row.kind != "user_message":
        return False
    if key is not None:
        return row.item.get("messageId") == key
    return row.item.get("text") in recorded_forms(prompt, first=None)


def prompt_history(rows: Sequence[Row], prompt: str, key: str | None = None) -> PromptHistory:
    """What the timeline records of the prompt (sent with message id `key`, if given)."""
    latest = _last_prompt_index(rows)
    return PromptHistory(
        times_recorded=sum(1 for row in rows if _is_prompt(row, prompt, key)),
        latest_is_this_prompt=latest is not None and _is_prompt(rows[latest], prompt, key),
        by_turn_key=key is not None,
    )


@dataclass(frozen=True)
class TurnSoFar:
    """Where a running turn stands in the timeline."""

    found: bool  # the latest prompt is this turn's
    prompt_seq: int  # the seq of its prompt's row (0 when not found)
    rows: list[Row]  # the rows after its prompt, in seq order
    last_seq: int  # the last row seen (the cursor to follow from)


def turn_so_far(rows: Sequence[Row], prompt: str, key: str | None = None) -> TurnSoFar:
    latest = _last_prompt_index(rows)
    last_seq = rows[-1].seq if rows else 0
    if latest is None or not _is_prompt(rows[latest], prompt, key):
        return TurnSoFar(False, 0, [], last_seq)
    return TurnSoFar(True, rows[latest].seq, list(rows[latest + 1 :]), last_seq)
