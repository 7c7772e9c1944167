"""Crash replay: nothing a client was shown is ever lost (issue #20).

A gateway is SIGKILLed at many points of streaming turns and a new one, on the same PostgreSQL
and the same fake daemon, takes the turns over. Each client resumes with `Last-Event-ID` and
what it holds must be what storage holds: the live part plus the resumed part equals a full
replay event by event (id, name, data), ids run 1..N without holes, one terminal event, last,
and the text deltas add up to the turn's `final_text`.

One gateway life is one round: it first takes over the previous round's turns (their clients
resume, and are checked), then runs this round's turns and is killed. A round streams
ROUND_CLIENTS long turns at once, each started once the one before has shown a (random)
number of events. The round's kill point is on the last one started: right after it received
event k (k = 1 is `turn.started`, 2 `agent.created`, then early text), or the event that took
its text past n characters (mid-text, near the end, the last words), or a (random) delay after
its POST was sent (some land before the turn is recorded, or before the prompt reached Paseo).
The clients started before it are killed wherever they are, a kill point each. A turn killed
before its prompt reached Paseo may end `interrupted` (prompt_not_delivered, or
gateway_restarted before the agent existed): the checks hold for it too. The plan is random,
from a seed printed with the results; PASEO_GATEWAY_TEST_CRASH_SEED=<seed> replays the plan.

Like the other tests that start gateways of their own, it runs on the CLI transport, and on
the daemon's with PASEO_GATEWAY_TEST_TRANSPORT=daemon (the test command's second run).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.services.turn.states import TERMINAL_EVENTS
from tests.api.conftest import (
    AUTH,
    Gateway,
    empty_database,
    gateway_env,
    gateway_transport,
    start_gateway,
    stop_gateway,
)
from tests.api.test_durable_turns import LONG, replay, wait_until_final
from tests.api.test_prompt import new_session, text_of
from tests.fakes.harness import FakePaseoDaemon
from tests.sse import SseEvent, read_events

pytestmark = pytest.mark.timeout(900)

SEED_ENV = "PASEO_GATEWAY_TEST_CRASH_SEED"
FAST_TAKEOVER = {
    "PASEO_GATEWAY_TURN_HEARTBEAT_SECONDS": "0.5",
    "PASEO_GATEWAY_TURN_STALE_SECONDS": "2",
}
# Turns streaming at once in a round (the gateway's default limit is 4: none waits queued).
ROUND_CLIENTS = 3
# A client starts once the one before it has shown this many events (drawn per client).
STAGGER_EVENTS = (1, 60)
# At least this many kill points per transport must hit a turn its client had not seen end.
# On a loaded machine the clients started first may finish before the kill: then extra rounds
# (random kill points) run, up to MAX_ROUNDS in all.
MIN_MID_TURN_KILL_POINTS = 20
MAX_ROUNDS = 20
# Generous deadlines for a loaded machine (a LONG turn streams 400-700 events in ~6 s).
ROUND_SECONDS = 240.0
RESUME_SECONDS = 240.0
# How a turn may end after a kill: completed, or interrupted if the kill came before the prompt
# reached Paseo (or before the agent existed).
LEGITIMATE_ENDINGS = {"prompt_not_delivered", "gateway_restarted"}
END_OF_STREAM = "(end of synthetic stream)"  # the LONG reply's last words (~5,200 chars)


@dataclass(frozen=True)
class Trigger:
    """Where a round's gateway is killed, on the round's last client: right after it received
    event `after_event`, or the event that brought its text to `text_chars` characters, or the
    one with END_OF_STREAM, or `delay` s after its POST was sent. One that never comes fires on
    the terminal event."""

    after_event: int | None = None
    text_chars: int | None = None
    end_of_stream: bool = False
    delay: float | None = None

    def __str__(self) -> str:
        if self.after_event is not None:
            return f"after event {self.after_event}"
        if self.text_chars is not None:
            return f"after {self.text_chars} chars of text"
        if self.end_of_stream:
            return "after the end-of-stream text"
        return f"{self.delay:.3f} s after the POST"

    def fires_on(self, events: list[SseEvent]) -> bool:
        last = events[-1]
        if self.delay is not None:
            return False
        if last.event in TERMINAL_EVENTS:
            return True
        if self.after_event is not None:
            return len(events) >= self.after_event
        if last.event != "text":
            return False
        if self.text_chars is not None:
            return len(text_of(events)) >= self.text_chars
        return END_OF_STREAM in last.json()["delta"]


@dataclass(frozen=True)
class Round:
    trigger: Trigger
    stagger: tuple[int, ...]  # events client j shows before client j + 1 starts


def plan(rng: random.Random) -> list[Round]:
    """The rounds of one transport: kills right after event k, and at random delays."""
    triggers = [
        Trigger(after_event=1),  # right after turn.started
        Trigger(after_event=2),  # right after agent.created
        Trigger(after_event=3),  # the first text
        Trigger(after_event=4),
        Trigger(after_event=rng.randint(5, 12)),
        Trigger(after_event=rng.randint(20, 120)),  # early text
        # By text, not by number: how many events carry the reply depends on the machine's load.
        Trigger(text_chars=rng.randint(1500, 3500)),  # mid-text (the reply is ~5,200 chars)
        Trigger(text_chars=rng.randint(4400, 5100)),  # near the end
        Trigger(end_of_stream=True),  # the text is all shown, the terminal is not
        Trigger(delay=rng.uniform(0.0, 0.3)),  # the prompt may not have reached Paseo
        Trigger(delay=rng.uniform(0.3, 1.5)),
        Trigger(delay=rng.uniform(1.5, 5.0)),
    ]
    return [_round(trigger, rng) for trigger in triggers]


def another_round(rng: random.Random) -> Round:
    """An extra round: a kill at a random event, text length or delay."""
    trigger = rng.choice(
        [
            Trigger(after_event=rng.randint(1, 60)),
            Trigger(text_chars=rng.randint(200, 5100)),
            Trigger(delay=rng.uniform(0.0, 4.0)),
        ]
    )
    return _round(trigger, rng)


def _round(trigger: Trigger, rng: random.Random) -> Round:
    return Round(trigger, tuple(rng.randint(*STAGGER_EVENTS) for _ in range(ROUND_CLIENTS - 1)))


@dataclass
class Watcher:
    """One client streaming one turn: what it was shown live, and what it got on resuming."""

    round: int
    index: int
    session_id: str
    prompt: str
    turn_id: str | None = None
    shown: list[SseEvent] = field(default_factory=list)
    resumed: list[SseEvent] = field(default_factory=list)
    killed: str = ""  # where the kill came, from this client's side
    posted: asyncio.Event = field(default_factory=asyncio.Event)  # its POST is on its way
    staggered: asyncio.Event = field(default_factory=asyncio.Event)  # the next one may start

    @property
    def last_id(self) -> str | None:
        return self.shown[-1].id if self.shown else None

    @property
    def saw_the_end(self) -> bool:
        return any(event.event in TERMINAL_EVENTS for event in self.shown)


@dataclass
class KillPoint:
    """One client's turn killed once, taken over, resumed and checked."""

    watcher: Watcher
    turn: dict[str, Any] | None = None  # None: killed before the POST recorded a turn
    stored: list[SseEvent] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def mid_turn(self) -> bool:
        """The client had not seen its turn end when the gateway died."""
        return self.turn is not None and not self.watcher.saw_the_end

    def row(self) -> str:
        w = self.watcher
        ending = "no turn"
        if self.turn is not None:
            ending = self.turn["status"]
            if self.turn.get("error_code"):
                ending += f" ({self.turn['error_code']})"
        shown = f"shown {len(w.shown)} (last id {w.last_id})"
        shown += ", its end" if w.saw_the_end else ""
        verdict = "ok" if not self.problems else "FAIL " + "; ".join(self.problems)
        return (
            f"round {w.round:2d} client {w.index} [{w.killed}] {shown}, resumed"
            f" {len(w.resumed)}, stored {len(self.stored)}, {ending}: {verdict}"
        )


class Killer:
    """SIGKILLs the gateway the moment a trigger fires (from inside the client's read loop:
    nothing runs between the client receiving the event and the kill)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.fired = asyncio.Event()
        self.why: str | None = None

    def kill(self, why: str) -> None:
        if self.why is None:
            self.gateway.process.kill()  # SIGKILL: no shutdown code runs
            self.why = why
            self.fired.set()


async def stream_turn(
    client: httpx.AsyncClient,
    watcher: Watcher,
    stagger: int | None,
    on_event: Callable[[Watcher], None],
) -> None:
    """POST the prompt and read its stream live until the terminal event or the kill."""
    try:
        watcher.posted.set()
        async with client.stream(
            "POST", f"/sessions/{watcher.session_id}/prompt", json={"prompt": watcher.prompt}
        ) as response:
            assert response.status_code == 200, await response.aread()
            watcher.turn_id = response.headers["x-turn-id"]
            async for event in read_events(response):
                watcher.shown.append(event)
                on_event(watcher)
                if stagger is not None and len(watcher.shown) >= stagger:
                    watcher.staggered.set()
                if event.event in TERMINAL_EVENTS:
                    return
    except httpx.TransportError:
        return  # the gateway died
    finally:
        watcher.staggered.set()


async def run_round(
    client: httpx.AsyncClient, number: int, spec: Round, killer: Killer
) -> list[Watcher]:
    """Start the round's turns, staggered; the trigger kills the gateway; every client reads
    until its stream breaks (or ends)."""
    watchers = []
    for index in range(ROUND_CLIENTS):
        session = await new_session(client, **LONG)
        prompt = f"crash round {number} client {index}"
        watchers.append(Watcher(number, index, session["id"], prompt))
    last = watchers[-1]

    def on_event(watcher: Watcher) -> None:
        if watcher is last and spec.trigger.fires_on(watcher.shown):
            killer.kill(str(spec.trigger))

    tasks: list[asyncio.Task[None]] = []
    for index, watcher in enumerate(watchers):
        if index > 0:
            await watchers[index - 1].staggered.wait()
        stagger = spec.stagger[index] if index < len(spec.stagger) else None
        tasks.append(asyncio.create_task(stream_turn(client, watcher, stagger, on_event)))
    if spec.trigger.delay is not None:
        await last.posted.wait()
        await asyncio.sleep(spec.trigger.delay)
        killer.kill(str(spec.trigger))
    fired = asyncio.ensure_future(killer.fired.wait())
    streams = asyncio.gather(*tasks)
    either: list[asyncio.Future[Any]] = [fired, streams]
    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    killer.kill("after every stream had ended")  # the trigger never fired: kill anyway
    killer.gateway.process.wait()
    await streams
    for watcher in watchers:
        watcher.killed = (killer.why or "") if watcher is last else "started earlier"
    return watchers


async def check(client: httpx.AsyncClient, watcher: Watcher) -> KillPoint:
    """On the new gateway: the client resumes after the last id it saw and reads to the end;
    then its view is checked against storage."""
    point = KillPoint(watcher)
    if watcher.turn_id is None:  # killed before the POST answered: was a turn recorded?
        turns = (await client.get(f"/sessions/{watcher.session_id}/turns")).json()
        if turns["total"] == 0:
            return point  # nothing was shown, nothing stored: nothing to lose
        watcher.turn_id = str(turns["items"][0]["id"])
    headers = {"Last-Event-ID": watcher.last_id} if watcher.last_id else None
    try:
        async with asyncio.timeout(RESUME_SECONDS):
            watcher.resumed = await replay(
                client, watcher.session_id, watcher.turn_id, headers=headers
            )
            point.turn = await wait_until_final(client, watcher.session_id, watcher.turn_id)
            point.stored = await replay(client, watcher.session_id, watcher.turn_id)
    except (TimeoutError, AssertionError) as exc:  # kept for the report: the others go on
        point.problems = [f"the turn was not taken over to its end: {exc!r}"]
        return point
    point.problems = problems_of(watcher, point.turn, point.stored)
    return point


def problems_of(watcher: Watcher, turn: dict[str, Any], stored: list[SseEvent]) -> list[str]:
    """What breaks the promise: the client's view (live + resumed) against storage."""
    held = watcher.shown + watcher.resumed
    problems = []
    final_text = turn["final_text"] or ""
    if text_of(held) != final_text:
        problems.append(
            f"(1) the client's text ({len(text_of(held))} chars) is not final_text"
            f" ({len(final_text)} chars)"
        )
    ids = [int(event.id or 0) for event in stored]
    if ids != list(range(1, len(ids) + 1)):
        holes = sorted(set(range(1, max(ids, default=0) + 1)) - set(ids))
        problems.append(f"(2) stored ids have holes: {_ranges(holes)} (or repeats)")
    mine, theirs = _view(held), _view(stored)
    if mine != theirs:
        at = next(
            (i for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b),
            min(len(mine), len(theirs)),
        )
        problems.append(
            f"(3) the replay differs from what the client holds from #{at}:"
            f" held {_brief(mine[at : at + 2])}, stored {_brief(theirs[at : at + 2])}"
        )
    for name, events in (("held", held), ("stored", stored)):
        terminals = [
            f"{event.id} {event.event}" for event in events if event.event in TERMINAL_EVENTS
        ]
        if len(terminals) != 1 or not events or events[-1].event != f"turn.{turn['status']}":
            problems.append(
                f"(4) {name}: terminal events {terminals}, not one, last, for {turn['status']}"
            )
    status, code = turn["status"], turn["error_code"]
    if status != "completed" and not (status == "interrupted" and code in LEGITIMATE_ENDINGS):
        problems.append(f"the turn ended {status} ({code}): {turn['error_message']}")
    return problems


def _view(events: list[SseEvent]) -> list[tuple[str | None, str, Any]]:
    return [(event.id, event.event, event.json()) for event in events]


def _ranges(numbers: list[int]) -> str:
    runs: list[list[int]] = []
    for n in numbers:
        if runs and runs[-1][1] == n - 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _brief(view: list[tuple[str | None, str, Any]]) -> str:
    return ", ".join(f"{seq} {name} {str(data)[:40]}" for seq, name, data in view) or "nothing"


@pytest.mark.slow
async def test_a_replay_after_any_crash_is_what_was_shown(
    fake_daemon: FakePaseoDaemon, agent_cwd: Path, tmp_path: Path
) -> None:
    transport = gateway_transport()  # cli; the daemon's with PASEO_GATEWAY_TEST_TRANSPORT
    seed = int(os.environ.get(SEED_ENV) or random.randrange(2**32))
    rng = random.Random(f"{seed}-{transport}")
    rounds = plan(rng)
    began = time.monotonic()
    points: list[KillPoint] = []
    pending: list[Watcher] = []
    with empty_database("postgresql", tmp_path) as url:
        env = gateway_env(url, fake_daemon, agent_cwd, **FAST_TAKEOVER)
        for life in range(MAX_ROUNDS + 1):  # each life takes the last round over, then dies
            gateway = start_gateway(tmp_path / f"life-{life}", env)
            try:
                async with httpx.AsyncClient(
                    base_url=gateway.url, headers=AUTH, timeout=60
                ) as client:
                    points += await asyncio.gather(*(check(client, w) for w in pending))
                    pending = []
                    mid_turn = sum(point.mid_turn for point in points)
                    if life == len(rounds) < MAX_ROUNDS and mid_turn < MIN_MID_TURN_KILL_POINTS:
                        rounds.append(another_round(rng))
                    if life < len(rounds):
                        async with asyncio.timeout(ROUND_SECONDS):
                            pending = await run_round(client, life, rounds[life], Killer(gateway))
            finally:
                stop_gateway(gateway)  # killed already, unless something failed on the way
            if not pending:
                break

    report = "\n".join(
        [
            f"crash replay on {transport}: seed {seed} ({SEED_ENV}={seed} replays the plan),"
            f" {len(points)} kill points ({mid_turn} mid-turn) in"
            f" {time.monotonic() - began:.0f} s",
            *(
                f"  round {n:2d}: kill {r.trigger}, stagger {r.stagger}"
                for n, r in enumerate(rounds)
            ),
            *(f"  {point.row()}" for point in points),
        ]
    )
    print(report)
    failed = [point for point in points if point.problems]
    assert not failed, (
        f"{len(failed)} of {len(points)} kill points broke the promise (seed {seed}):\n"
        + "\n".join(point.row() for point in failed)
    )
    assert mid_turn >= MIN_MID_TURN_KILL_POINTS, f"only {mid_turn} kill points mid-turn"
