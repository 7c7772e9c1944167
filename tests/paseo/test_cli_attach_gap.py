"""The hole `paseo attach` leaves after its replay (attach_gap): judged on token strings, and
filled for real against the fake CLI, whose FAKE_PASEO_ATTACH_DROP loses what the real one
loses (the live events that came with the replay)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path

import psutil
import pytest

from app.paseo.cli.attach_gap import (
    AGREE_TOKENS,
    Codes,
    HeldTrack,
    Track,
    Verdict,
    common_prefix_length,
    judge,
)
from app.paseo.cli.attach_stream import HEADER_END
from app.paseo.cli.client import CliPaseoClient, _replayed_turn
from app.paseo.types import (
    AgentNotice,
    AgentStarted,
    NewAgent,
    PromptDelivered,
    ReasoningDelta,
    TextDelta,
    TodoUpdate,
    ToolActivity,
    TurnEnded,
    TurnEvent,
)
from tests.conftest import release_when
from tests.fakes.harness import FAKE_PASEO_BIN, FakePaseoDaemon, Hold, running_fake_processes

PROSE = (
    "I'll take a look at the scroll anchor behavior you described. Let me start by walking "
    "through how the conversation list handles streaming updates and where the auto-scroll "
    "logic lives. "
)
END = "\n\n_(end of synthetic stream)_\n"
# The pace of the turns here ("ten-second-stream": an event every ~2 ms). A turn that attach
# must join running is held (`hold`) until the hole was filled, however slow the machine.
TIME_SCALE = 0.4
FILLED = "filled from a second attach"  # what the client logs once it filled a hole


# --- judging -----------------------------------------------------------------------------


def test_nothing_lost_is_final_once_they_agree_past_the_anchor() -> None:
    replay = PROSE[:40]
    assert judge(replay, PROSE[:60], anchor=40, a_final=False, b_final=False) == 40
    later = PROSE[: 40 + AGREE_TOKENS]
    assert judge(later, PROSE, anchor=40, a_final=False, b_final=False) == Verdict(len(later))


def test_a_hole_after_the_replay_is_found_even_when_the_next_chunk_starts_alike() -> None:
    replay, lost, shown = PROSE[:30], PROSE[30:70], PROSE[70:]
    verdict = judge(replay + shown, PROSE, anchor=len(replay), a_final=False, b_final=False)
    assert isinstance(verdict, Verdict) and verdict.explained
    # Shown up to where they part, then the missing tokens: the text is the same either way.
    assert verdict.at >= len(replay)
    filled = (replay + shown)[: verdict.at] + PROSE[verdict.at : verdict.at + verdict.missing]
    assert filled + (replay + shown)[verdict.at :] == PROSE
    assert verdict.missing == len(lost)


def test_what_only_a_has_is_the_second_attachs_own_hole() -> None:
    b = PROSE[:50] + PROSE[90:]  # B lost 40 tokens after its replay; A has them
    assert judge(PROSE, b, anchor=20, a_final=False, b_final=False) == Verdict(50)


def test_undecided_shows_a_as_far_as_b_agrees() -> None:
    a = PROSE[:30] + PROSE[70:90]
    assert judge(a, PROSE[:31], anchor=30, a_final=False, b_final=False) == 30  # B too short
    assert judge(a, PROSE, anchor=30, a_final=False, b_final=False) == 30  # A's tail too short


def test_what_b_printed_beyond_a_silent_a_was_lost() -> None:
    """Both quiet: A would have printed live events within milliseconds (a tool runs now)."""
    a = PROSE[:40]
    assert judge(a, PROSE[:90], anchor=40, a_final=False, b_final=True) == 40
    assert judge(a, PROSE[:90], anchor=40, a_final=False, b_final=True, silent=True) == Verdict(
        40, 50
    )


def test_a_difference_neither_side_explains_gives_up_once_both_are_final() -> None:
    a, b = PROSE[:40] + "x" * 50, PROSE[:40] + "y" * 50
    assert judge(a, b, anchor=40, a_final=False, b_final=False) == 40
    assert judge(a, b, anchor=40, a_final=True, b_final=True) == Verdict(40, explained=False)


def test_common_prefix_length() -> None:
    assert common_prefix_length("", "abc") == 0
    assert common_prefix_length("abc", "abc") == 3
    for cut in range(len(PROSE)):
        changed = PROSE[:cut] + "\x00" + PROSE[cut + 1 :]
        assert common_prefix_length(PROSE, changed) == cut


def test_tracks_count_each_tool_once_between_characters() -> None:
    codes = Codes()
    live, replay = Track(codes), Track(codes)
    for item in (
        TextDelta("ab"),
        ReasoningDelta("th"),
        ReasoningDelta("ink"),
        ToolActivity("read", "running"),
        ToolActivity("read", "completed"),
        PromptDelivered(),
        TextDelta("cd"),
    ):
        live.add(item)
    for item in (
        TextDelta("ab"),
        ReasoningDelta("think"),
        ToolActivity("read", "completed"),
        TextDelta("cd"),
    ):
        replay.add(item)
    assert live.code == replay.code and len(live.code) == 2 + 5 + 1 + 2
    assert live.code[:2] == "ab" and live.code[2] != "t"  # reasoning is not text
    assert replay.cut(1, 8) == [
        TextDelta("b"),
        ReasoningDelta("think"),
        ToolActivity("read", "completed"),
    ]


def test_a_held_track_shows_up_to_a_token_and_never_twice() -> None:
    held = HeldTrack(Codes())
    for item in (
        PromptDelivered(),
        TextDelta("hello "),
        TodoUpdate(1, 2),
        TextDelta("you"),
    ):
        held.add(item)
    assert held.release(0) == [PromptDelivered()]
    assert held.release(3) == [TextDelta("hel")]
    assert held.release(3) == []
    assert held.release(7) == [TextDelta("lo "), TodoUpdate(1, 2)]
    assert held.release_all() == [TextDelta("you")]


# --- against the fake CLI ----------------------------------------------------------------


def _client(daemon: FakePaseoDaemon, **env: str) -> CliPaseoClient:
    return CliPaseoClient(
        str(FAKE_PASEO_BIN), host=daemon.host, timeout=30, base_env={**os.environ, **env}
    )


def _text(events: list[TurnEvent]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


async def replayed_turn(daemon: FakePaseoDaemon, agent_id: str, prompt: str) -> list[TurnEvent]:
    """The turn as an attach of the idle agent replays it: complete and exact."""
    process = await asyncio.create_subprocess_exec(
        str(FAKE_PASEO_BIN),
        "attach",
        "--",
        agent_id,
        env=daemon.env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    out = b""
    try:
        async with asyncio.timeout(60):
            while END.encode() not in out:
                chunk = await process.stdout.read(65536)
                assert chunk, out
                out += chunk
    finally:
        process.terminate()
        await process.wait()
    replayed = _replayed_turn(out.split(HEADER_END.encode(), 1)[1], prompt, first=True)
    assert replayed is not None
    return replayed


def _tokens(events: list[TurnEvent]) -> str:
    """Text, reasoning and tool lines as attach_gap compares them (live and replayed alike)."""
    track = Track(Codes())
    for event in events:
        track.add(event)
    return track.code


def _version(monkeypatch: pytest.MonkeyPatch, version: str | None) -> None:
    if version is None:
        monkeypatch.delenv("FAKE_PASEO_VERSION", raising=False)
    else:
        monkeypatch.setenv("FAKE_PASEO_VERSION", version)


@pytest.mark.parametrize("version", [None, "0.5"], ids=["default", "0.5"])
@pytest.mark.parametrize("drop", [1, 3])
async def test_a_first_prompt_keeps_what_its_attach_lost(
    version: str | None,
    drop: int,
    tmp_path: Path,
    agent_cwd: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    hold: Hold,
) -> None:
    """Attach joins the running first turn and loses `drop` live events after its replay:
    the turn still streams every character, in order, and ends with the whole answer. The
    turn runs until the hole was filled (`hold`), then ends."""
    _version(monkeypatch, version)
    prompt = hold.prompt("review the scroll anchor")
    with FakePaseoDaemon(tmp_path / "home", time_scale=TIME_SCALE) as daemon:
        client = _client(daemon, FAKE_PASEO_ATTACH_DROP=str(drop))
        agent = NewAgent(provider="mock", model="ten-second-stream", cwd=str(agent_cwd))
        releaser = asyncio.create_task(release_when(hold, lambda: FILLED in caplog.text))
        try:
            with caplog.at_level(logging.WARNING, logger="app.paseo.cli"):
                events = [event async for event in client.start_agent_turn(agent, prompt)]
            await releaser
        finally:
            releaser.cancel()
            await client.aclose()
        agent_id = next(e.agent.agent_id for e in events if isinstance(e, AgentStarted))
        transcript = await replayed_turn(daemon, agent_id, prompt)
        assert running_fake_processes(home=daemon.home) == []  # the second attach was reaped
    ended = events[-1]
    assert isinstance(ended, TurnEnded) and ended.outcome == "completed"
    assert ended.final_text == _text(events) == _text(transcript)
    assert ended.final_text.endswith(END)
    assert _tokens(events) == _tokens(transcript)  # reasoning and tool lines too
    assert not [e for e in events if isinstance(e, AgentNotice) and e.kind == "error"]
    messages = [record.getMessage() for record in caplog.records]
    assert any(FILLED in message for message in messages), messages


async def test_a_resumed_turn_keeps_what_its_attach_lost(
    tmp_path: Path,
    agent_cwd: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    hold: Hold,
) -> None:
    """A gateway that died mid-turn resumes it from its cursor; that attach joins the running
    turn too and loses what came with its replay: the rest still comes whole, once. The turn
    runs until the resumed attach's hole was filled (`hold`), then ends."""
    _version(monkeypatch, None)
    prompt = hold.prompt("work for a while")
    with FakePaseoDaemon(tmp_path / "home", time_scale=TIME_SCALE) as daemon:
        agent = NewAgent(provider="mock", model="ten-second-stream", cwd=str(agent_cwd))
        first = _client(daemon)
        before: list[TurnEvent] = []
        turn = first.start_agent_turn(agent, prompt)
        async with asyncio.timeout(60):
            async for event in turn:
                before.append(event)
                if sum(isinstance(e, TextDelta) for e in before) >= 3:
                    break
        await turn.aclose()  # the gateway dies; the agent works on
        await first.aclose()
        agent_id = next(e.agent.agent_id for e in before if isinstance(e, AgentStarted))
        cursor = [e for e in before if isinstance(e, TextDelta)][-1].cursor
        second = _client(daemon, FAKE_PASEO_ATTACH_DROP="2")
        releaser = asyncio.create_task(release_when(hold, lambda: FILLED in caplog.text))
        try:
            with caplog.at_level(logging.WARNING, logger="app.paseo.cli"):
                after = [e async for e in second.resume_agent_turn(agent_id, prompt, cursor)]
            await releaser
        finally:
            releaser.cancel()
            await second.aclose()
        transcript = await replayed_turn(daemon, agent_id, prompt)
    ended = after[-1]
    assert isinstance(ended, TurnEnded) and ended.outcome == "completed"
    assert _text(before) + _text(after) == ended.final_text == _text(transcript)
    assert FILLED in caplog.text


def _my_paseo_children() -> list[psutil.Process]:
    children = []
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if str(FAKE_PASEO_BIN) in " ".join(child.cmdline()):
                children.append(child)
    return children


async def test_cancelling_while_the_check_runs_reaps_both_attaches(
    fake_daemon: FakePaseoDaemon, agent_cwd: Path, hold: Hold
) -> None:
    """Every call starts slowly: the turn is cancelled while the second attach still starts.
    The agent's turn runs until stopped (`hold`), however long the three children take."""
    client = _client(fake_daemon, FAKE_PASEO_STARTUP_DELAY="1")
    agent = NewAgent(provider="mock", model="five-minute-stream", cwd=str(agent_cwd))
    seen: list[TurnEvent] = []

    async def consume() -> None:
        async for event in client.start_agent_turn(agent, hold.prompt()):
            seen.append(event)

    task = asyncio.create_task(consume())
    deadline = time.monotonic() + 60
    while len(_my_paseo_children()) < 3:  # attach, wait and the second attach
        assert time.monotonic() < deadline and not task.done(), _my_paseo_children()
        await asyncio.sleep(0.02)
    assert not [e for e in seen if isinstance(e, TextDelta)]  # held until checked
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _my_paseo_children() == []
    started = next(e for e in seen if isinstance(e, AgentStarted))
    await client.stop_agent(started.agent.agent_id)
    await client.aclose()
