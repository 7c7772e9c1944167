"""What the CLI transport has shown of a turn, and where a resume picks it up (pure).

`attach` prints no positions, so the CLI transport's resume cursor counts characters:
`text:<t>:<r>` means t characters of the reply and r of the reasoning are stored. Resuming,
`attach` replays the turn whole (text raw, reasoning merged into one line); the stored
characters of both are passed over, and so are the tool and todo lines before the first
character that was not stored. Counting reasoning too is what keeps it from streaming twice:
with text alone counted, a turn that had stored only reasoning (a model thinks first) got its
whole reasoning again on resume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from app.paseo.types import ReasoningDelta, TextDelta, TurnEvent, TurnOutput

TEXT_CURSOR = "text:"


@dataclass(frozen=True)
class Stored:
    """What a cursor says is stored: reply and reasoning characters (`reasoning` None: a
    cursor written before reasoning was counted), and whether anything was (`found`)."""

    text: int = 0
    reasoning: int | None = 0
    found: bool = False


def format_cursor(text: int, reasoning: int) -> str:
    return f"{TEXT_CURSOR}{text}:{reasoning}"


def parse_cursor(cursor: str | None) -> Stored:
    """`format_cursor`'s counts; an older `text:<n>` has no reasoning count; another
    transport's cursor (or none) says nothing is stored."""
    if cursor is None or not cursor.startswith(TEXT_CURSOR):
        return Stored()
    text, _, reasoning = cursor.removeprefix(TEXT_CURSOR).partition(":")
    if not text.isdigit():
        return Stored()
    return Stored(int(text), int(reasoning) if reasoning.isdigit() else None, found=True)


class Reply:
    """A turn's reply text and reasoning so far, each event with its resume cursor."""

    def __init__(self) -> None:
        self.text = ""
        self.reasoning = 0  # reasoning characters seen (shown, or passed over on resume)
        self.offset = Stored()  # what came before that a resume could not line up
        self.lined_up = True
        self._stored = Stored()  # what a resume passes over: shown before the restart

    @property
    def cursor(self) -> str:
        reasoning = (self.offset.reasoning or 0) + self.reasoning
        return format_cursor(self.offset.text + len(self.text), reasoning)

    def add(self, delta: str) -> TextDelta:
        self.text += delta
        return TextDelta(delta, cursor=self.cursor)

    def take(self, event: TurnOutput) -> TurnOutput | None:
        """The event to show, with its cursor; None for what a resume passes over."""
        if isinstance(event, TextDelta):
            skipped = min(max(self._stored.text - len(self.text), 0), len(event.text))
            self.text += event.text[:skipped]
            rest = event.text[skipped:]
            return self.add(rest) if rest else None
        if isinstance(event, ReasoningDelta) and self._stored.reasoning is not None:
            stored = self._stored.reasoning
            skipped = min(max(stored - self.reasoning, 0), len(event.text))
            self.reasoning += len(event.text)
            rest = event.text[skipped:]
            return ReasoningDelta(rest, cursor=self.cursor) if rest else None
        past = self._past_stored()
        if isinstance(event, ReasoningDelta):
            self.reasoning += len(event.text)
        return replace(event, cursor=self.cursor) if past else None

    def _past_stored(self) -> bool:
        """Whether the turn has gone past what was stored before a restart."""
        stored = self._stored
        if not stored.found or len(self.text) > stored.text:
            return True
        return stored.reasoning is not None and self.reasoning > stored.reasoning

    def resume(self, items: Sequence[TurnEvent] | None, cursor: str | None) -> bool:
        """Line the replayed turn (`items`, None: not this prompt's) up with the cursor;
        False when it cannot be (then nothing is passed over and the cursor goes on from
        the stored counts)."""
        stored = parse_cursor(cursor)
        so_far = sum(len(item.text) for item in items or () if isinstance(item, TextDelta))
        if items is None or so_far < stored.text:
            self.offset, self.lined_up = stored, False
            return False
        self._stored = stored
        return True
