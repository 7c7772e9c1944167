"""The `PaseoClient` contract, run against every transport: the CLI client and the daemon's
WebSocket client, both against the same fake daemon (or a real daemon, when
PASEO_GATEWAY_TEST_REAL_PASEO_HOST names one: see `daemon_under_test`).

Only protocol methods are used here, so both transports must pass the same tests.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from app.paseo.cli.client import CliPaseoClient
from app.paseo.client import PaseoClient
from app.paseo.daemon.client import DaemonPaseoClient
from app.paseo.daemon.protocol import Feature, protocol_of
from app.paseo.daemon.target import parse_host
from app.paseo.errors import PaseoError, PaseoErrorKind
from app.paseo.media import PromptImage, PromptMedia, TextAttachment
from app.paseo.types import (
    AgentStarted,
    NewAgent,
    PermissionAnswer,
    PermissionRequested,
    PromptDelivered,
    PromptSteered,
    TextDelta,
    ToolActivity,
    TurnEnded,
    TurnEvent,
    TurnStarted,
)
from tests.fakes.fake_paseo_common import RECEIVED_MEDIA
from tests.fakes.harness import FAKE_PASEO_BIN, FakePaseoDaemon, Hold

INSTANT = "emit 4 coalesced agent stream updates"
INSTANT_REPLY = "".join(f"stress-update-{i}" for i in range(4))

ClientFactory = Callable[[str], PaseoClient]
# Set these to run the contract against a real daemon instead of the fake (see README).
REAL_HOST_ENV = "PASEO_GATEWAY_TEST_REAL_PASEO_HOST"
REAL_BIN_ENV = "PASEO_GATEWAY_TEST_REAL_PASEO_BIN"
REAL_HOME_ENV = "PASEO_GATEWAY_TEST_REAL_PASEO_HOME"


@dataclass(frozen=True)
class DaemonUnderTest:
    """Where the daemon is, the CLI that talks to it, and its PASEO_HOME."""

    host: str
    cli: str
    home: Path


@pytest.fixture(scope="session")
def daemon_under_test(request: pytest.FixtureRequest) -> DaemonUnderTest:
    """The fake daemon, or a real one when REAL_HOST_ENV names it."""
    if real := os.environ.get(REAL_HOST_ENV):
        home = Path(os.environ.get(REAL_HOME_ENV) or "~/.paseo").expanduser()
        return DaemonUnderTest(real, os.environ.get(REAL_BIN_ENV) or "paseo", home)
    fake: FakePaseoDaemon = request.getfixturevalue("fake_daemon")
    return DaemonUnderTest(fake.host, str(FAKE_PASEO_BIN), fake.home)


def _cli_factory(daemon: DaemonUnderTest) -> ClientFactory:
    def make(host: str) -> PaseoClient:
        return CliPaseoClient(daemon.cli, host=host, home=str(daemon.home), timeout=60)

    return make


def _daemon_factory(daemon: DaemonUnderTest) -> ClientFactory:
    def make(host: str) -> PaseoClient:
        return DaemonPaseoClient(parse_host(host))

    return make


IMPLEMENTATIONS = {"cli": _cli_factory, "daemon": _daemon_factory}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def client_factory(
    request: pytest.FixtureRequest, daemon_under_test: DaemonUnderTest
) -> ClientFactory:
    factory: ClientFactory = IMPLEMENTATIONS[request.param](daemon_under_test)
    return factory


@pytest.fixture
async def paseo(
    client_factory: ClientFactory, daemon_under_test: DaemonUnderTest
) -> AsyncIterator[PaseoClient]:
    client = client_factory(daemon_under_test.host)
    yield client
    await client.aclose()


@pytest.fixture
async def down_paseo(client_factory: ClientFactory) -> AsyncIterator[PaseoClient]:
    """A client pointed at a port where no daemon listens."""
    client = client_factory("127.0.0.1:1")
    yield client
    await client.aclose()


def _agent(cwd: Path, model: str = "ten-second-stream", **labels: str) -> NewAgent:
    return NewAgent(
        provider="mock", model=model, cwd=str(cwd), title="contract", labels=dict(labels)
    )


async def _collect(events: AsyncIterator[TurnEvent]) -> list[TurnEvent]:
    return [event async for event in events]


def _text(events: list[TurnEvent]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


def _streamed_live(events: list[TurnEvent]) -> bool:
    """Text on both sides of a tool call: it came in the order the agent wrote it, not as one
    block rebuilt at the end (whatever the machine's load, tool lines split the text)."""
    kinds = [type(event) for event in events if isinstance(event, TextDelta | ToolActivity)]
    if ToolActivity not in kinds:
        return False
    first_tool = kinds.index(ToolActivity)
    return TextDelta in kinds[:first_tool] and TextDelta in kinds[first_tool:]


async def _new_agent(paseo: PaseoClient, cwd: Path, **labels: str) -> str:
    events = await _collect(paseo.start_agent_turn(_agent(cwd, **labels), INSTANT))
    started = events[1]
    assert isinstance(started, AgentStarted)
    return started.agent.agent_id


async def test_ping_and_list(paseo: PaseoClient, agent_cwd: Path) -> None:
    await paseo.ping()
    tag = uuid.uuid4().hex
    agent_id = await _new_agent(paseo, agent_cwd, run=tag)
    listed = await paseo.list_agents(labels={"run": tag})
    assert [agent.id for agent in listed] == [agent_id]
    # The gateway's own terms, whatever the transport printed.
    agent = listed[0]
    assert (agent.title, agent.provider, agent.model) == ("contract", "mock", "ten-second-stream")
    assert agent.cwd == str(agent_cwd.resolve()) and agent.status in ("running", "idle")
    assert await paseo.list_agents(labels={"run": "nothing-has-this"}) == []


async def test_first_turn_streams_and_ends(paseo: PaseoClient, agent_cwd: Path) -> None:
    events = await _collect(paseo.start_agent_turn(_agent(agent_cwd), "write a haiku"))
    # Nothing is created before the consumer asks past `TurnStarted`.
    assert [type(event) for event in events[:3]] == [TurnStarted, AgentStarted, PromptDelivered]
    ended = events[-1]
    assert isinstance(ended, TurnEnded)
    assert ended.outcome == "completed"
    assert ended.final_text == _text(events)
    assert ended.final_text.startswith("## Cycle 1")
    assert ended.final_text.endswith("\n\n_(end of synthetic stream)_\n")
    assert _streamed_live(events)
    assert ended.usage is not None and ended.usage.output_tokens


async def test_a_first_prompt_ending_in_a_newline_streams_live(
    paseo: PaseoClient, agent_cwd: Path
) -> None:
    """Paseo records the prompt trimmed; the turn is still found and streamed as it runs."""
    events = await _collect(paseo.start_agent_turn(_agent(agent_cwd), "write a haiku\n"))
    ended = events[-1]
    assert isinstance(ended, TurnEnded) and ended.outcome == "completed"
    assert _streamed_live(events)
    assert ended.final_text == _text(events)
    assert ended.final_text.endswith("\n\n_(end of synthetic stream)_\n")


async def test_a_multi_line_prompt_is_not_taken_for_the_answer(
    paseo: PaseoClient, agent_cwd: Path
) -> None:
    agent_id = await _new_agent(paseo, agent_cwd)
    prompt = "emit 2 coalesced agent stream updates\nsecond line of the prompt\n"
    events = await _collect(paseo.prompt_agent_turn(agent_id, prompt))
    ended = events[-1]
    assert isinstance(ended, TurnEnded) and ended.outcome == "completed"
    assert ended.final_text == "stress-update-0stress-update-1" == _text(events)
    delivered = [i for i, e in enumerate(events) if isinstance(e, PromptDelivered)]
    assert len(delivered) == 1 and delivered[0] < len(events) - 1


async def test_prompt_history_tells_this_turn_from_earlier_ones(
    paseo: PaseoClient, agent_cwd: Path
) -> None:
    events = await _collect(paseo.start_agent_turn(_agent(agent_cwd), "write a haiku"))
    agent_id = next(e.agent.agent_id for e in events if isinstance(e, AgentStarted))
    streamed = _text(events)

    mine = await paseo.prompt_history(agent_id, "write a haiku\n")
    other = await paseo.prompt_history(agent_id, INSTANT)

    assert (mine.times_recorded, mine.latest_is_this_prompt) == (1, True)
    assert (other.times_recorded, other.latest_is_this_prompt) == (0, False)
    # What the turn answered is read by resuming it: whitespace and all, though `logs`
    # trims blocks.
    replayed = await _collect(paseo.resume_agent_turn(agent_id, "write a haiku\n", None))
    assert _text(replayed) == streamed


async def _left_after_three_deltas(
    paseo: PaseoClient, agent_id: str, prompt: str, key: str
) -> tuple[list[TurnEvent], str]:
    """A turn followed until its third text delta and then dropped, as by a gateway that
    died (the agent works on): the events seen, and the cursor of the last."""
    before: list[TurnEvent] = []
    turn = paseo.prompt_agent_turn(agent_id, prompt, turn_key=key)
    async with asyncio.timeout(60):
        async for event in turn:
            before.append(event)
            if sum(isinstance(e, TextDelta) for e in before) >= 3:
                break
    await turn.aclose()
    cursor = [e for e in before if isinstance(e, TextDelta)][-1].cursor
    assert cursor is not None
    return before, cursor


async def test_resuming_from_a_cursor_yields_what_follows_it_once(
    paseo: PaseoClient, agent_cwd: Path
) -> None:
    """A gateway that died mid-turn had stored the events up to some cursor: resumed from
    it, the turn yields the rest, and nothing before the cursor again."""
    agent_id = await _new_agent(paseo, agent_cwd)
    prompt, key = "work for a while", str(uuid.uuid4())
    before, cursor = await _left_after_three_deltas(paseo, agent_id, prompt, key)

    after = await _collect(paseo.resume_agent_turn(agent_id, prompt, cursor, turn_key=key))
    ended = after[-1]
    assert isinstance(ended, TurnEnded) and ended.outcome == "completed"
    whole = await _collect(paseo.resume_agent_turn(agent_id, prompt, None, turn_key=key))
    assert _text(before) + _text(after) == _text(whole) == ended.final_text
    assert _text(whole).endswith("_(end of synthetic stream)_\n")
    last = [e for e in after if isinstance(e, TextDelta)][-1].cursor
    assert (
        _text(await _collect(paseo.resume_agent_turn(agent_id, prompt, last, turn_key=key))) == ""
    )


async def test_a_turn_that_ends_while_its_resumer_waits_yields_every_row(
    paseo: PaseoClient, agent_cwd: Path, hold: Hold
) -> None:
    """Recovery pauses at each event it yields (the gateway stores it): a turn that ends
    during such a pause still yields the text it wrote meanwhile, before its end."""
    agent_id = await _new_agent(paseo, agent_cwd)
    prompt, key = hold.prompt("work for a while"), str(uuid.uuid4())
    before, cursor = await _left_after_three_deltas(paseo, agent_id, prompt, key)

    resumed = paseo.resume_agent_turn(agent_id, prompt, cursor, turn_key=key)
    after: list[TurnEvent] = []
    async with asyncio.timeout(60):
        async for event in resumed:  # up to the resumed turn's start: it pauses there
            after.append(event)
            if isinstance(event, TurnStarted):
                break
    hold.release()
    async with asyncio.timeout(120):  # the turn ends while the resumer is paused
        while (await paseo.inspect_agent(agent_id)).status in ("running", "initializing"):
            await asyncio.sleep(0.1)
    after += await _collect(resumed)

    ended = after[-1]
    assert isinstance(ended, TurnEnded) and ended.outcome == "completed"
    whole = await _collect(paseo.resume_agent_turn(agent_id, prompt, None, turn_key=key))
    assert _text(before) + _text(after) == _text(whole) == ended.final_text
    assert ended.final_text.endswith("_(end of synthetic stream)_\n")


async def test_a_turn_key_tells_a_prompt_from_an_earlier_one_of_the_same_text(
    paseo: PaseoClient, agent_cwd: Path
) -> None:
    """Sent twice, one prompt text is two turns: where the transport keeps the turn's key,
    its history is that turn's alone; else it counts both (and recovery subtracts)."""
    agent_id = await _new_agent(paseo, agent_cwd)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    for key in (first, second):
        await _collect(paseo.prompt_agent_turn(agent_id, INSTANT, turn_key=key))
    latest = await paseo.prompt_history(agent_id, INSTANT, turn_key=second)
    earlier = await paseo.prompt_history(agent_id, INSTANT, turn_key=first)
    assert latest.latest_is_this_prompt
    if latest.by_turn_key:
        assert (latest.times_recorded, earlier.times_recorded) == (1, 1)
        assert not earlier.latest_is_this_prompt  # the same text, but not its turn
    else:
        assert latest.times_recorded == 3  # the text of the first turn too


async def test_next_turn_streams_only_its_own_output(paseo: PaseoClient, agent_cwd: Path) -> None:
    agent_id = await _new_agent(paseo, agent_cwd)
    events = await _collect(
        paseo.prompt_agent_turn(agent_id, "emit 2 coalesced agent stream updates")
    )
    ended = events[-1]
    assert isinstance(ended, TurnEnded) and ended.outcome == "completed"
    assert ended.final_text == "stress-update-0stress-update-1" == _text(events)


async def test_prompt_is_data_whatever_it_starts_with(paseo: PaseoClient, agent_cwd: Path) -> None:
    agent_id = await _new_agent(paseo, agent_cwd)
    prompt = "--host=evil:1 --prompt-file=/etc/passwd\n-x\nemit 1 coalesced agent stream updates"
    events = await _collect(paseo.prompt_agent_turn(agent_id, prompt))
    ended = events[-1]
    assert isinstance(ended, TurnEnded) and ended.final_text == "stress-update-0"


@pytest.mark.parametrize("behavior", ["allow", "deny"])
async def test_a_permission_request_is_answered_and_the_turn_goes_on(
    paseo: PaseoClient, agent_cwd: Path, behavior: Literal["allow", "deny"]
) -> None:
    agent_id = await _new_agent(paseo, agent_cwd)
    turn = paseo.prompt_agent_turn(agent_id, "emit synthetic plan approval")
    events: list[TurnEvent] = []
    async with asyncio.timeout(60):
        async for event in turn:
            events.append(event)
            if isinstance(event, PermissionRequested):
                break
    request = events[-1]
    assert isinstance(request, PermissionRequested)
    assert request.request.name == "MockPlanApproval"
    assert (request.request.description or "").startswith("Review the proposed plan")
    if request.request.kind is not None:  # the daemon says it all; the CLI less
        assert request.request.kind == "plan" and request.request.input
        assert {a.behavior for a in request.request.actions} == {"allow", "deny"}
    assert [r.id for r in await paseo.list_permissions(agent_id)] == [request.request.id]
    with pytest.raises(PaseoError):
        await paseo.answer_permission(agent_id, "no-such-request", PermissionAnswer("allow"))
    answer = PermissionAnswer(behavior, message="not now" if behavior == "deny" else None)
    await paseo.answer_permission(agent_id, request.request.id, answer)
    async with asyncio.timeout(60):
        rest = [event async for event in turn]
    ended = rest[-1]
    assert isinstance(ended, TurnEnded) and ended.outcome == "completed"  # the mock, either way
    assert await paseo.list_permissions(agent_id) == []
    assert (await paseo.inspect_agent(agent_id)).status == "idle"


async def test_stop_ends_a_running_turn(paseo: PaseoClient, agent_cwd: Path, hold: Hold) -> None:
    """The turn runs until stopped (`hold`; a real daemon: its minute), however slow the
    machine is to get there."""
    agent = _agent(agent_cwd, model="one-minute-stream")
    turn = paseo.start_agent_turn(agent, hold.prompt("work for a while"))
    assert isinstance(await anext(turn), TurnStarted)
    started = await anext(turn)
    assert isinstance(started, AgentStarted)
    collected: list[TurnEvent] = []

    async def follow() -> None:
        async for event in turn:
            collected.append(event)

    follower = asyncio.create_task(follow())
    async with asyncio.timeout(60):  # the turn is under way once its text streams
        while not any(isinstance(event, TextDelta) for event in collected):
            await asyncio.sleep(0.05)
    stopped = await paseo.stop_agent(started.agent.agent_id)
    assert stopped.agent_ids == [started.agent.agent_id]
    await asyncio.wait_for(follower, 30)
    assert isinstance(collected[-1], TurnEnded)
    assert (await paseo.inspect_agent(started.agent.agent_id)).status == "idle"


async def test_inspect_archive_delete(paseo: PaseoClient, agent_cwd: Path) -> None:
    agent_id = await _new_agent(paseo, agent_cwd)
    detail = await paseo.inspect_agent(agent_id)
    assert (detail.id, detail.provider, detail.status) == (agent_id, "mock", "idle")
    archived = await paseo.archive_agent(agent_id)
    assert archived.agent_id == agent_id and archived.archived_at.tzinfo is not None
    # An archived agent is unloaded: nothing to stop, and an answer at once (the daemon
    # sends none to a cancel of an unloaded agent).
    assert (await paseo.stop_agent(agent_id)).stopped_count == 0
    with pytest.raises(PaseoError) as again:
        await paseo.archive_agent(agent_id)
    assert again.value.code == "AGENT_ALREADY_ARCHIVED"
    assert again.value.kind == PaseoErrorKind.CONFLICT
    deleted = await paseo.delete_agent(agent_id)
    assert deleted.agent_ids == [agent_id]


async def test_rename_relabel_and_switch_the_mode(paseo: PaseoClient, agent_cwd: Path) -> None:
    agent_id = await _new_agent(paseo, agent_cwd)
    tag = uuid.uuid4().hex
    await paseo.update_agent(agent_id, title="renamed", labels={"steer": tag})
    listed = await paseo.list_agents(labels={"steer": tag})
    assert [(agent.id, agent.title) for agent in listed] == [(agent_id, "renamed")]
    await paseo.update_agent(agent_id, labels={"second": tag})  # merged, not replaced
    assert [a.id for a in await paseo.list_agents(labels={"steer": tag, "second": tag})] == [
        agent_id
    ]
    mode = (await paseo.inspect_agent(agent_id)).available_modes[0].id
    for switched in ("plan", mode):  # the mock takes any id, as a real provider takes its own
        await paseo.set_agent_mode(agent_id, switched)
        assert (await paseo.inspect_agent(agent_id)).mode == switched
    for change in (
        paseo.update_agent(str(uuid.uuid4()), title="x"),
        paseo.set_agent_mode(str(uuid.uuid4()), mode),
    ):
        with pytest.raises(PaseoError) as missing:
            await change
        assert missing.value.kind == PaseoErrorKind.NOT_FOUND


@pytest.mark.parametrize(
    "call",
    ["inspect_agent", "stop_agent", "archive_agent", "delete_agent"],
)
async def test_unknown_agent_is_not_found(paseo: PaseoClient, call: str) -> None:
    with pytest.raises(PaseoError) as raised:
        await getattr(paseo, call)(str(uuid.uuid4()))
    assert raised.value.kind == PaseoErrorKind.NOT_FOUND


async def test_unknown_agent_turn_is_not_found(paseo: PaseoClient) -> None:
    with pytest.raises(PaseoError) as raised:
        await _collect(paseo.prompt_agent_turn(str(uuid.uuid4()), INSTANT))
    assert raised.value.kind == PaseoErrorKind.NOT_FOUND


async def test_unknown_provider_is_invalid_input(paseo: PaseoClient, agent_cwd: Path) -> None:
    agent = NewAgent(provider="nosuch", cwd=str(agent_cwd), title="x")
    with pytest.raises(PaseoError) as raised:
        await _collect(paseo.start_agent_turn(agent, INSTANT))
    assert raised.value.code == "AGENT_CREATE_FAILED"
    assert raised.value.kind == PaseoErrorKind.INVALID_INPUT


async def test_steering_joins_the_running_turn_where_paseo_can(
    paseo: PaseoClient, agent_cwd: Path, hold: Hold
) -> None:
    """Paseo steers from 0.5 on, over its WebSocket; elsewhere nothing is sent and the turn
    runs on untouched. The turn runs until the steer was answered (`hold`), then ends."""
    facts = await paseo.ping()
    can_steer = facts.transport == "daemon" and protocol_of({"version": facts.version}).has(
        Feature.STEERING
    )
    agent_id = await _new_agent(paseo, agent_cwd)
    turn = paseo.prompt_agent_turn(agent_id, hold.prompt("write a haiku"))
    seen: list[TurnEvent] = []
    async for event in turn:
        seen.append(event)
        if isinstance(event, TextDelta):
            break  # the turn runs
    if can_steer:
        await paseo.steer_agent_turn(agent_id, "and mention the sea")
    else:
        with pytest.raises(PaseoError) as raised:
            await paseo.steer_agent_turn(agent_id, "and mention the sea")
        assert raised.value.code == "STEER_UNSUPPORTED"
        assert raised.value.kind == PaseoErrorKind.UNSUPPORTED
    hold.release()
    seen += await _collect(turn)
    ended = seen[-1]
    assert isinstance(ended, TurnEnded) and ended.outcome == "completed"
    steered = [event for event in seen if isinstance(event, PromptSteered)]
    assert [event.text for event in steered] == (["and mention the sea"] if can_steer else [])
    if can_steer:
        with pytest.raises(PaseoError) as raised:
            await paseo.steer_agent_turn(agent_id, "too late")
        assert raised.value.code == "NO_ACTIVE_TURN"


async def test_import_returns_the_run_shape(paseo: PaseoClient, agent_cwd: Path) -> None:
    session_id = str(uuid.uuid4())
    try:
        created = await paseo.import_agent(
            provider="claude", session_id=session_id, cwd=str(agent_cwd)
        )
    except PaseoError as refused:
        # Paseo 0.5+ refuses a provider its config disables (the real test daemons disable
        # claude) and imports any provider id, the mock's too.
        if "disabled" not in refused.message:
            raise
        created = await paseo.import_agent(
            provider="mock", session_id=session_id, cwd=str(agent_cwd)
        )
    assert created.provider in ("claude", "mock") and uuid.UUID(created.agent_id)
    with pytest.raises(PaseoError) as raised:
        await paseo.import_agent(provider="codex", session_id="abc", cwd=str(agent_cwd))
    assert raised.value.code == "AGENT_IMPORT_FAILED"


async def test_providers(paseo: PaseoClient) -> None:
    providers = {provider.provider: provider for provider in await paseo.list_providers()}
    assert "mock" in providers and "claude" in providers
    mock = providers["mock"]
    assert mock.enabled is True and mock.status in ("ready", "loading")
    assert mock.default_mode == "load-test"
    assert mock.modes or mock.status == "loading"  # a loading provider lists no modes yet
    if mock.modes:  # ids on both transports (the CLI's labels mapped by Paseo's manifest)
        assert [(mode.id, mode.label) for mode in mock.modes] == [("load-test", "Load Test")]


async def test_a_providers_models(paseo: PaseoClient) -> None:
    models = {model.id: model for model in await paseo.list_models("mock")}
    assert {"ten-second-stream", "five-minute-stream"} <= set(models)
    stream = models["ten-second-stream"]
    assert stream.provider == "mock" and stream.label == "Ten second stream"
    assert stream.description
    with pytest.raises(PaseoError) as raised:
        await paseo.list_models("no-such-provider")
    assert raised.value.code == "PROVIDER_ERROR"


@pytest.mark.parametrize("call", ["ping", "list_agents", "list_providers_checked"])
async def test_daemon_down_is_unavailable(down_paseo: PaseoClient, call: str) -> None:
    if call == "list_providers_checked":
        # The CLI's `provider ls` answers a static list when the daemon is down, the daemon
        # transport cannot answer at all; either way ping is the check.
        try:
            assert await down_paseo.list_providers()
        except PaseoError as exc:
            assert exc.kind == PaseoErrorKind.UNAVAILABLE
        call = "ping"
    with pytest.raises(PaseoError) as raised:
        await getattr(down_paseo, call)()
    assert raised.value.code == "DAEMON_NOT_RUNNING"
    assert raised.value.kind == PaseoErrorKind.UNAVAILABLE


async def test_daemon_down_turn_is_unavailable(down_paseo: PaseoClient, agent_cwd: Path) -> None:
    with pytest.raises(PaseoError) as raised:
        await _collect(down_paseo.start_agent_turn(_agent(agent_cwd), INSTANT))
    assert raised.value.kind == PaseoErrorKind.UNAVAILABLE


PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg=="
)


def _received(daemon: DaemonUnderTest, agent_id: str) -> list[dict[str, Any]]:
    """What the fake daemon recorded of this agent's prompts' images and attachments."""
    path = daemon.home / RECEIVED_MEDIA
    lines = path.read_text().splitlines() if path.exists() else []
    return [entry for line in lines if (entry := json.loads(line))["agentId"] == agent_id]


@pytest.mark.skipif(bool(os.environ.get(REAL_HOST_ENV)), reason="reads the fake's record")
async def test_images_reach_the_agent(
    paseo: PaseoClient, daemon_under_test: DaemonUnderTest, agent_cwd: Path
) -> None:
    """With the first prompt (create) and a later one (send), each as the daemon takes it:
    base64 data and its mimeType (the CLI's `--image` file says it by its extension)."""
    first = PromptMedia(images=(PromptImage("image/png", PNG),))
    events = await _collect(paseo.start_agent_turn(_agent(agent_cwd), INSTANT, media=first))
    assert isinstance(events[-1], TurnEnded) and events[-1].outcome == "completed"
    agent_id = next(e.agent.agent_id for e in events if isinstance(e, AgentStarted))
    later = PromptMedia(images=(PromptImage("image/gif", b"GIF89a"), first.images[0]))
    events = await _collect(paseo.prompt_agent_turn(agent_id, INSTANT, media=later))
    assert isinstance(events[-1], TurnEnded) and events[-1].outcome == "completed"
    received = _received(daemon_under_test, agent_id)
    images = [[(i["mimeType"], base64.b64decode(i["data"])) for i in r["images"]] for r in received]
    assert images == [[("image/png", PNG)], [("image/gif", b"GIF89a"), ("image/png", PNG)]]
    assert [r["text"] for r in received] == [INSTANT, INSTANT]


@pytest.mark.skipif(bool(os.environ.get(REAL_HOST_ENV)), reason="reads the fake's record")
async def test_text_attachments_reach_the_agent_over_the_daemon_only(
    paseo: PaseoClient, daemon_under_test: DaemonUnderTest, agent_cwd: Path
) -> None:
    agent_id = await _new_agent(paseo, agent_cwd)
    media = PromptMedia(attachments=(TextAttachment("line 1\nline 2", "notes.txt"),))
    if isinstance(paseo, CliPaseoClient):
        with pytest.raises(PaseoError) as raised:
            await _collect(paseo.prompt_agent_turn(agent_id, INSTANT, media=media))
        assert raised.value.code == "MEDIA_UNSUPPORTED"
        return
    events = await _collect(paseo.prompt_agent_turn(agent_id, INSTANT, media=media))
    assert isinstance(events[-1], TurnEnded) and events[-1].outcome == "completed"
    (received,) = _received(daemon_under_test, agent_id)
    assert received["attachments"] == [
        {"type": "text", "mimeType": "text/plain", "text": "line 1\nline 2", "title": "notes.txt"}
    ]
