"""Filling the hole `paseo attach` can leave right after its replay.

attach.ts (every release) fetches the agent's timeline, prints it, and only then registers its
`agent_stream` listener; live frames that reached it in the same socket read as the timeline
are dropped without a trace. Only a turn already running when attach starts is exposed (a
first prompt, a resumed turn); the daemon's timeline keeps everything.

So the attach that follows such a turn (A) is checked against a second one (B), started as
soon as A prints its replay: every frame A lost reached A before that, so B's replay, fetched
later, holds them all. Both are compared as token strings (`Track`). A's events are passed on
only as far as they agree with B's; at the first difference `judge` decides whether B has
tokens A lacks (A's hole: B's events there are put in) or A has tokens B lacks (B's own hole,
which comes later than A's, or a tool line a replay merges): then nothing was lost. After
that verdict A streams alone and B is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from app.aio import cancel_and_wait
from app.paseo.cli.attach_stream import AttachParser, ParsedItem, PromptSeen
from app.paseo.cli.process import CliRunner
from app.paseo.errors import PaseoError
from app.paseo.prompts import recorded_forms
from app.paseo.types import (
    PermissionRequested,
    PermissionResolved,
    ReasoningDelta,
    TextDelta,
    TodoUpdate,
    ToolActivity,
    TurnEvent,
)

logger = logging.getLogger(__name__)

# How many tokens must agree before a match counts (a coincidence over 32 characters of prose
# does not happen) and beyond the point where B started, before "nothing lost" is final.
AGREE_TOKENS = 32
# The largest hole looked for (the real CLI lost 43-285 characters: one to seven 60 ms chunks).
MAX_MISSING_TOKENS = 2048
# B's output counts as complete (its replay arrives in one burst) after this much silence.
SETTLE_SECONDS = 0.3
# Both attaches print a live event within milliseconds: when both have been silent this long,
# what B printed beyond A is what A lost (A went quiet right after its hole: a tool runs).
SILENCE_SECONDS = 1.0
# A difference that neither case explains though both sides went on past it is given up
# after this long: A is passed on as it is (a reasoning line with a newline parses
# differently live and replayed, see attach_stream).
PATIENCE_SECONDS = 1.0
# The check never holds A's events longer than this (B printing nothing, a stuck daemon).
GAP_CHECK_MAX_SECONDS = 30.0

_PRIVATE_PLANE = 0x100000  # token codes that are not plain text characters start here
_LAST_CODE = 0x10FFFD


class Codes:
    """One code point per token kind shared by A and B: text characters stand for themselves,
    reasoning characters and tool names get code points of Unicode's last private plane."""

    def __init__(self) -> None:
        self._codes: dict[tuple[str, str], str] = {}

    def of(self, kind: str, value: str) -> str:
        code = self._codes.get((kind, value))
        if code is None:
            # Past the plane's end every new token shares its last code: matching degrades.
            code = chr(min(_PRIVATE_PLANE + len(self._codes), _LAST_CODE))
            self._codes[(kind, value)] = code
        return code

    def text(self, text: str) -> str:
        if not text or max(text) < chr(_PRIVATE_PLANE):
            return text
        return "".join(c if c < chr(_PRIVATE_PLANE) else self.of("t", c) for c in text)

    def reasoning(self, text: str) -> str:
        return "".join(self.of("r", c) for c in text)


class Track:
    """The events one attach printed for the turn, and their tokens.

    Text and reasoning give a token per character (a replay prints them whole, live output in
    chunks: the characters are the same). A tool or todo line gives one token, once per name
    between two characters: live output prints each update of a call, a replay its last one.
    Other events (notices, permission events) have no token.
    """

    def __init__(self, codes: Codes) -> None:
        self.codes = codes
        self.items: list[TurnEvent] = []
        self.starts: list[int] = []  # the token where each item begins
        self.sizes: list[int] = []
        self._parts: list[str] = []
        self._joined = ""
        self._names: set[str] = set()  # tool lines since the last character

    @property
    def code(self) -> str:
        if len(self._joined) != self.length:
            self._joined = "".join(self._parts)
        return self._joined

    @property
    def length(self) -> int:
        return self.starts[-1] + self.sizes[-1] if self.items else 0

    def add(self, item: TurnEvent) -> None:
        piece = self._piece(item)
        self.starts.append(self.length)
        self.items.append(item)
        self.sizes.append(len(piece))
        self._parts.append(piece)

    def _piece(self, item: TurnEvent) -> str:
        if isinstance(item, TextDelta | ReasoningDelta) and item.text:
            self._names.clear()
            if isinstance(item, TextDelta):
                return self.codes.text(item.text)
            return self.codes.reasoning(item.text)
        name = _line_name(item)
        if name is None or name in self._names:
            return ""
        self._names.add(name)
        return self.codes.of("line", name)

    def cut(self, start: int, end: int) -> list[TurnEvent]:
        """The items that make tokens [start, end), text and reasoning sliced to fit, with the
        token-less items strictly inside."""
        out: list[TurnEvent] = []
        for item, at, size in zip(self.items, self.starts, self.sizes, strict=True):
            if size == 0:
                if start < at < end:
                    out.append(item)
            elif at < end and at + size > start:
                out.append(_slice(item, max(start - at, 0), min(end - at, size)))
        return out


class HeldTrack(Track):
    """A's track: items are shown (released) in order, up to a token, and never taken back."""

    def __init__(self, codes: Codes) -> None:
        super().__init__(codes)
        self._next = 0  # first item not wholly shown
        self._shown = 0  # tokens of that item already shown

    def release(self, upto: int) -> list[TurnEvent]:
        """Everything before token `upto` not shown yet, and the token-less items at it."""
        out: list[TurnEvent] = []
        while self._next < len(self.items):
            item, at, size = (
                self.items[self._next],
                self.starts[self._next],
                self.sizes[self._next],
            )
            if at + size <= upto or (size == 0 and at <= upto):
                out.append(_slice(item, self._shown, size) if self._shown else item)
                self._next, self._shown = self._next + 1, 0
            else:
                if at + self._shown < upto:  # a chunk that ends after `upto`: show its start
                    out.append(_slice(item, self._shown, upto - at))
                    self._shown = upto - at
                break
        return out

    def release_all(self) -> list[TurnEvent]:
        return self.release(self.length)


def _line_name(item: TurnEvent) -> str | None:
    if isinstance(item, ToolActivity):
        return f"tool:{item.name}"
    if isinstance(item, TodoUpdate):
        return "todo"
    return None


def _slice(item: TurnEvent, start: int, end: int) -> TurnEvent:
    if isinstance(item, TextDelta | ReasoningDelta) and (start, end) != (0, len(item.text)):
        return replace(item, text=item.text[start:end])
    return item


@dataclass(frozen=True)
class Verdict:
    """A's tokens are right up to `at`; there B has `missing` tokens A never showed (0: none).
    `explained` is False when the difference fit neither case and A is shown as it is."""

    at: int
    missing: int = 0
    explained: bool = True


def judge(
    a: str, b: str, anchor: int, *, a_final: bool, b_final: bool, silent: bool = False
) -> Verdict | int:
    """Compare A's tokens with B's: a verdict, or how far A may be shown while undecided.

    `anchor`: A's length when B started printing; A's hole, if any, lies before it (A's replay
    was printed long before B got that far). `a_final`/`b_final`: no more tokens will come.
    `silent`: neither has printed anything for SILENCE_SECONDS.
    """
    same = common_prefix_length(a, b)
    if same == min(len(a), len(b)):
        if same >= anchor + AGREE_TOKENS:
            return Verdict(same)  # they agree well past where a hole could be
        if b_final and (len(a) >= len(b) or a_final):
            return Verdict(same)  # B can tell nothing more; a missing end is read at the end
        if b_final and silent:
            return Verdict(same, len(b) - same)  # A would have printed it by now: lost
        return same
    lost = _shift(a, b, same, a_final, b_final)  # B has tokens A lacks: A's hole
    extra = _shift(b, a, same, b_final, a_final)  # A has tokens B lacks: nothing lost
    if isinstance(lost, int) and (not isinstance(extra, int) or lost <= extra):
        return Verdict(same, lost)
    if isinstance(extra, int):
        return Verdict(same)
    if lost == "exhausted" and extra == "exhausted":
        return Verdict(same, explained=False)
    return same


def _shift(probe: str, other: str, at: int, probe_final: bool, other_final: bool) -> int | str:
    """The smallest n (1..MAX_MISSING_TOKENS) with `other[at + n:]` going on as `probe[at:]`
    for AGREE_TOKENS tokens (fewer when `probe` is final); "exhausted" when there is none and
    more tokens could not change that, "wait" when they could."""
    size = min(AGREE_TOKENS, len(probe) - at)
    if size < AGREE_TOKENS and not probe_final:
        return "wait"
    found = other.find(probe[at : at + size], at + 1, at + MAX_MISSING_TOKENS + size)
    if found >= 0:
        return found - at
    searched = other_final or len(other) >= at + MAX_MISSING_TOKENS + size
    return "exhausted" if searched else "wait"


def common_prefix_length(a: str, b: str) -> int:
    """How many leading characters `a` and `b` share (slice comparisons, not a loop per char)."""
    low, high = 0, min(len(a), len(b))
    if a[:high] == b[:high]:
        return high
    while high - low > 1:  # a[:low] == b[:low] and a[:high] != b[:high]
        middle = (low + high) // 2
        if a[low:middle] == b[low:middle]:
            low = middle
        else:
            high = middle
    return low


class SecondAttach:
    """B: a `paseo attach` read in the background; `track` holds the turn's items it printed
    (its replay, then live output). Stopping it (`aclose`) terminates and reaps the child."""

    def __init__(
        self, runner: CliRunner, agent_id: str, prompt: str, first: bool | None, codes: Codes
    ) -> None:
        self.track = Track(codes)
        self.ours = False  # the turn B shows is this prompt's
        self.header_seen = False
        self.ended = False
        self.last_output = 0.0
        self.changed = asyncio.Event()
        self._codes = codes
        self._forms = recorded_forms(prompt, first=first)
        self._task = asyncio.create_task(self._read(runner, agent_id, prompt, first))

    def settled(self, now: float) -> bool:
        """Nothing more is coming: B ended, or its replay is in and it has been quiet."""
        return self.ended or (self.ours and now - self.last_output >= SETTLE_SECONDS)

    async def _read(
        self, runner: CliRunner, agent_id: str, prompt: str, first: bool | None
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with runner.spawn(["attach", "--", agent_id]) as child:
                parser = AttachParser(prompt, expect_header=True, first=first)
                while chunk := await child.read_chunk():
                    self._take(parser.feed(chunk))
                    self.header_seen = parser.header_seen
                    self.last_output = loop.time()
                    self.changed.set()
                self._take(parser.finish())
        except (PaseoError, OSError) as exc:
            logger.warning("the second attach of agent %s failed: %s", agent_id, exc)
        finally:
            self.ended = True
            self.changed.set()

    def _take(self, items: list[ParsedItem]) -> None:
        for item in items:
            if isinstance(item, PromptSeen):
                self.track, self.ours = Track(self._codes), item.text in self._forms
            else:
                self.track.add(item)

    async def aclose(self) -> None:
        await cancel_and_wait(self._task)


async def checked(
    events: AsyncGenerator[TurnEvent, None],
    second: Callable[[Codes], SecondAttach],
    *,
    replayed: Sequence[TurnEvent] | None = None,
) -> AsyncGenerator[TurnEvent, None]:
    """A's `events`, held back until checked against B (`second` starts it), then as they come.

    B starts at once when A's replayed turn is given (`replayed`: A's replay was read), else
    with A's first event (attach prints the replay first). Permission events come from the
    turn's finisher, not A: they keep their place in the order but start nothing.
    """
    loop = asyncio.get_running_loop()
    check = _Check(second, loop.time())
    if replayed is not None:
        check.start(loop.time())
    for item in replayed or ():
        check.add(item, loop.time())
    upcoming: asyncio.Task[TurnEvent | None] | None = asyncio.create_task(_next(events))
    waiter: asyncio.Task[bool] | None = None
    try:
        while True:
            waiting: set[asyncio.Future[Any]] = {upcoming} if upcoming else set()
            if check.witness is not None:
                waiter = waiter or asyncio.create_task(check.witness.changed.wait())
                waiting.add(waiter)
            wake_at = check.wake_at(loop.time())
            timeout = None if wake_at is None else max(wake_at - loop.time(), 0.0)
            await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if upcoming is not None and upcoming.done():
                if upcoming.exception() is not None:
                    for item in check.held.release_all():
                        yield item  # what A printed before the turn failed, as it is
                event = upcoming.result()
                upcoming = None if event is None else asyncio.create_task(_next(events))
                if event is not None:
                    check.add(event, loop.time())
            if waiter is not None and waiter.done() and check.witness is not None:
                waiter = None
                check.witness.changed.clear()  # what it signalled is read below
            if check.witness is None:
                if upcoming is None:
                    break  # A ended before printing anything: nothing to check
                continue
            verdict = check.verdict(loop.time(), a_final=upcoming is None)
            if isinstance(verdict, int):
                for item in check.held.release(verdict):
                    yield item
                continue
            for item in check.held.release(verdict.at):
                yield item
            for item in check.missing(verdict):
                yield item
            break
        await check.stop()
        for item in check.held.release_all():
            yield item
        if upcoming is not None:
            event, upcoming = await upcoming, None
            if event is not None:
                yield event
                async for event in events:
                    yield event
    finally:
        for task in (upcoming, waiter):
            if task is not None:
                await cancel_and_wait(task)
        await events.aclose()
        await check.stop()


class _Check:
    """The state of one check: A's held track, B, and the clocks `judge` is given."""

    def __init__(self, second: Callable[[Codes], SecondAttach], now: float) -> None:
        self.codes = Codes()
        self.held = HeldTrack(self.codes)
        self.witness: SecondAttach | None = None
        self._second = second
        self._deadline = now + GAP_CHECK_MAX_SECONDS
        self._anchor: int | None = None
        self._last_event = now  # when A last printed something
        self._stuck: tuple[int, float] | None = None  # an unexplained difference: where, since

    def add(self, event: TurnEvent, now: float) -> None:
        self.held.add(event)
        if isinstance(event, PermissionRequested | PermissionResolved):
            return  # the finisher's, not A's
        self._last_event = now
        if self.witness is None:
            self.start(now)  # A's replay is being printed: its timeline was fetched

    def start(self, now: float) -> None:
        self.witness = self._second(self.codes)
        self._deadline = now + GAP_CHECK_MAX_SECONDS

    async def stop(self) -> None:
        if self.witness is not None:
            await self.witness.aclose()

    def verdict(self, now: float, *, a_final: bool) -> Verdict | int:
        """`judge` once B shows the turn; giving up (A shown as it is) when B cannot."""
        witness = self.witness
        assert witness is not None
        if now >= self._deadline:
            logger.warning("no second attach checked the turn within %g s", GAP_CHECK_MAX_SECONDS)
            return Verdict(self.held.length, explained=False)
        if self._anchor is None and witness.header_seen:
            self._anchor = self.held.length
        if self._anchor is None or not witness.ours:
            if witness.ended:
                logger.warning("the second attach showed no replay of the turn: not checked")
                return Verdict(self.held.length, explained=False)
            return 0
        a, b = self.held.code, witness.track.code
        b_final = witness.settled(now)
        silent = min(now - self._last_event, now - witness.last_output) >= SILENCE_SECONDS
        verdict = judge(a, b, self._anchor, a_final=a_final, b_final=b_final, silent=silent)
        if isinstance(verdict, int) and min(len(a), len(b)) >= verdict + AGREE_TOKENS:
            # Both went on past a difference nothing explains yet: how long to wait for it.
            if self._stuck is None or self._stuck[0] != verdict:
                self._stuck = (verdict, now)
            elif now - self._stuck[1] >= PATIENCE_SECONDS:
                verdict = judge(a, b, self._anchor, a_final=True, b_final=True)
        if isinstance(verdict, Verdict) and not verdict.explained:
            logger.warning("attach and a second attach differ beyond repair: not filled")
        return verdict

    def missing(self, verdict: Verdict) -> list[TurnEvent]:
        """B's events A lost, for the place `verdict` found."""
        if not verdict.missing or self.witness is None:
            return []
        logger.warning(
            "paseo attach lost %d tokens of the turn; filled from a second attach",
            verdict.missing,
        )
        return self.witness.track.cut(verdict.at, verdict.at + verdict.missing)

    def wake_at(self, now: float) -> float | None:
        """When to judge again without news: B may have settled, both gone silent, patience
        or the whole check run out."""
        witness = self.witness
        if witness is None:
            return None
        moments = [
            self._deadline,
            witness.last_output + SETTLE_SECONDS,
            max(self._last_event, witness.last_output) + SILENCE_SECONDS,
        ]
        if self._stuck is not None:
            moments.append(self._stuck[1] + PATIENCE_SECONDS)
        future = [moment for moment in moments if moment > now]
        return min(future) if future else None


async def _next(events: AsyncIterator[TurnEvent]) -> TurnEvent | None:
    """The next event, None at the end (a task cannot carry StopAsyncIteration)."""
    with contextlib.suppress(StopAsyncIteration):
        return await anext(events)
    return None
