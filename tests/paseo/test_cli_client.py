"""What only the CLI client does: argv building, process limits, reaping, odd output."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time
import uuid
from pathlib import Path

import psutil
import pytest

from app.paseo.cli.client import CliPaseoClient, _left_in
from app.paseo.errors import PaseoError, PaseoErrorKind
from app.paseo.types import (
    AgentStarted,
    NewAgent,
    PermissionResolved,
    TextDelta,
    TurnEnded,
    TurnEvent,
)
from tests.fakes.harness import (
    FAKE_PASEO_BIN,
    FakePaseoDaemon,
    Hold,
    argv_log,
    cli_calls,
    running_fake_processes,
)


def _client(daemon: FakePaseoDaemon, **env: str) -> CliPaseoClient:
    return CliPaseoClient(
        str(FAKE_PASEO_BIN),
        host=daemon.host,
        home=str(daemon.home),
        timeout=30,
        base_env={**os.environ, **env},
    )


def _my_paseo_children() -> list[psutil.Process]:
    """Fake paseo processes this test process started (other suites may run beside it)."""
    children = []
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if str(FAKE_PASEO_BIN) in " ".join(child.cmdline()):
                children.append(child)
    return children


async def _no_children_left(timeout: float = 60) -> list[tuple[int, list[str]]]:
    deadline = time.monotonic() + timeout
    while (alive := running_fake_processes()) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return alive


async def test_daemon_address_and_prompt_never_in_argv(tmp_path: Path, agent_cwd: Path) -> None:
    log = tmp_path / "argv.jsonl"
    with FakePaseoDaemon(tmp_path / "home", time_scale=0.1, password="s3cret-pw") as daemon:
        client = _client(daemon, FAKE_PASEO_ARGV_LOG=str(log))
        agent = NewAgent(provider="mock", cwd=str(agent_cwd), title="-t", labels={"k": "v"})
        events = [
            e async for e in client.start_agent_turn(agent, "emit 1 coalesced agent stream updates")
        ]
        agent_id = next(e.agent.agent_id for e in events if isinstance(e, AgentStarted))
        prompt = "--prompt-file=/etc/passwd\nemit 1 coalesced agent stream updates"
        turn = [e async for e in client.prompt_agent_turn(agent_id, prompt)]
        await client.aclose()
    assert isinstance(turn[-1], TurnEnded) and turn[-1].final_text == "stress-update-0"
    entries = argv_log(log)
    assert entries and all(entry["env_PASEO_HOST_set"] for entry in entries)
    for entry in entries:
        argv = [str(arg) for arg in entry["argv"]]  # type: ignore[union-attr]
        assert not any("s3cret" in arg or arg.startswith("--host") for arg in argv), argv
    send = next(e for e in entries if e["argv"][0] == "send")  # type: ignore[index]
    assert send["prompt"] == prompt  # the prompt arrived verbatim, through --prompt-file
    assert prompt not in send["argv"]  # type: ignore[operator]
    run = next(e for e in entries if e["argv"][0] == "run")  # type: ignore[index]
    assert "--title=-t" in run["argv"]  # type: ignore[operator]
    assert run["argv"][-2:] == ["--", "emit 1 coalesced agent stream updates"]  # type: ignore[index]


async def test_prompt_file_is_removed_after_the_turn(
    fake_daemon: FakePaseoDaemon, agent_cwd: Path, tmp_path: Path
) -> None:
    log = tmp_path / "argv.jsonl"
    client = _client(fake_daemon, FAKE_PASEO_ARGV_LOG=str(log))
    agent = NewAgent(provider="mock", cwd=str(agent_cwd), title="files")
    events = [
        e async for e in client.start_agent_turn(agent, "emit 1 coalesced agent stream updates")
    ]
    agent_id = next(e.agent.agent_id for e in events if isinstance(e, AgentStarted))
    _ = [
        e async for e in client.prompt_agent_turn(agent_id, "emit 1 coalesced agent stream updates")
    ]
    await client.aclose()
    send = next(e for e in argv_log(log) if e["argv"][0] == "send")  # type: ignore[index]
    prompt_file = next(a for a in send["argv"] if str(a).startswith("--prompt-file="))  # type: ignore[union-attr]
    assert not Path(str(prompt_file).split("=", 1)[1]).exists()


async def test_cancelling_a_turn_reaps_its_children(
    fake_daemon: FakePaseoDaemon, agent_cwd: Path, hold: Hold
) -> None:
    """The agent's turn runs until stopped (`hold`): its children are still there to reap,
    however long they took to start."""
    client = _client(fake_daemon)
    agent = NewAgent(provider="mock", model="five-minute-stream", cwd=str(agent_cwd), title="long")
    seen: list[object] = []

    async def consume() -> None:
        async for event in client.start_agent_turn(agent, hold.prompt()):
            seen.append(event)

    task = asyncio.create_task(consume())
    deadline = time.monotonic() + 60
    while len(_my_paseo_children()) < 2:  # until attach and wait are running
        assert time.monotonic() < deadline, _my_paseo_children()
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _no_children_left() == []
    started = next(e for e in seen if isinstance(e, AgentStarted))
    await client.stop_agent(started.agent.agent_id)  # the turn itself goes on until stopped
    await client.aclose()


async def test_short_call_timeout_kills_the_child(fake_daemon: FakePaseoDaemon) -> None:
    client = CliPaseoClient(
        str(FAKE_PASEO_BIN),
        host=fake_daemon.host,
        timeout=0.5,
        base_env={**os.environ, "FAKE_PASEO_STARTUP_DELAY": "120"},
    )
    started = time.monotonic()
    with pytest.raises(PaseoError) as raised:
        await client.list_agents()
    # SIGTERM ended it; no waiting out the two-minute delay (however slow the machine).
    assert time.monotonic() - started < 60
    assert raised.value.code == "CLI_TIMEOUT"
    assert raised.value.kind == PaseoErrorKind.TIMEOUT
    assert await _no_children_left() == []


async def test_semaphore_caps_concurrent_short_calls(fake_daemon: FakePaseoDaemon) -> None:
    client = CliPaseoClient(
        str(FAKE_PASEO_BIN),
        host=fake_daemon.host,
        max_processes=2,
        base_env={**os.environ, "FAKE_PASEO_STARTUP_DELAY": "0.4"},
    )
    most = 0

    async def sample() -> None:
        nonlocal most
        while True:
            most = max(most, len(_my_paseo_children()))
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    started = time.monotonic()
    # The runner's own limit (identical reads through the client would share one child).
    await asyncio.gather(*(client.runner.run(["ls", "--json"]) for _ in range(6)))
    elapsed = time.monotonic() - started
    sampler.cancel()
    assert most == 2
    assert elapsed >= 1.2  # three rounds of two


async def test_identical_reads_in_flight_cost_one_child(
    fake_daemon: FakePaseoDaemon, tmp_path: Path
) -> None:
    log = tmp_path / "argv.log"
    client = _client(fake_daemon, FAKE_PASEO_STARTUP_DELAY="0.5", FAKE_PASEO_ARGV_LOG=str(log))
    try:
        lists = await asyncio.gather(*(client.list_agents() for _ in range(20)))
        assert all(listed == lists[0] for listed in lists)
        assert cli_calls(log, "ls") == 1
        await client.list_agents()  # not in flight any more: a call of its own
        assert cli_calls(log, "ls") == 2
    finally:
        await client.aclose()


async def test_on_a_slow_machine_a_first_prompt_streams_what_attach_replays(
    fake_daemon: FakePaseoDaemon, agent_cwd: Path
) -> None:
    """Every CLI call takes 4 s: the turn is over before `attach` prints anything. Its replay
    still arrives as the turn's text, chunk by chunk and exact, not one block from `logs`."""
    client = _client(fake_daemon, FAKE_PASEO_STARTUP_DELAY="4")
    agent = NewAgent(provider="mock", model="ten-second-stream", cwd=str(agent_cwd))
    try:
        events = [event async for event in client.start_agent_turn(agent, "work")]
    finally:
        await client.aclose()
    texts = [event.text for event in events if isinstance(event, TextDelta)]
    ended = events[-1]
    assert isinstance(ended, TurnEnded) and ended.outcome == "completed"
    assert len(texts) > 3 and ended.final_text == "".join(texts)
    assert ended.final_text.endswith("\n\n_(end of synthetic stream)_\n")  # as attach prints it


async def test_missing_binary_is_unavailable(tmp_path: Path) -> None:
    client = CliPaseoClient(str(tmp_path / "no-such-paseo"))
    with pytest.raises(PaseoError) as raised:
        await client.ping()
    assert raised.value.code == "PASEO_NOT_INSTALLED"
    assert raised.value.kind == PaseoErrorKind.UNAVAILABLE


@pytest.mark.parametrize(
    ("script", "code"),
    [
        ("echo 'not json'", "BAD_OUTPUT"),
        ("echo '[{\"id\": 1}]'", "BAD_OUTPUT"),
        ("echo 'Error: something odd' >&2; exit 1", "CLI_FAILED"),
        ("echo \"error: unknown option '--x'\" >&2; exit 1", "CLI_USAGE"),
    ],
)
async def test_odd_cli_output(tmp_path: Path, script: str, code: str) -> None:
    binary = tmp_path / "paseo"
    binary.write_text(f"#!/bin/sh\n{script}\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    client = CliPaseoClient(str(binary))
    with pytest.raises(PaseoError) as raised:
        await client.list_agents()
    assert raised.value.code == code


async def test_no_permission_event_is_lost_when_the_turn_ends() -> None:
    """What the reader task already took from the queue comes first, then what is left."""
    asked: asyncio.Queue[TurnEvent] = asyncio.Queue()
    question = asyncio.create_task(asked.get())
    asked.put_nowait(PermissionResolved("first"))
    asked.put_nowait(PermissionResolved("second"))
    await asyncio.sleep(0)  # the reader task takes "first"
    assert question.done()
    assert await _left_in(asked, question) == [
        PermissionResolved("first"),
        PermissionResolved("second"),
    ]
    idle = asyncio.create_task(asked.get())
    assert await _left_in(asked, idle) == [] and idle.cancelled()


# --- every CLI release -----------------------------------------------------------------------

INSTANT = "emit 1 coalesced agent stream updates"
RUN_FLAG = {"0.1.65": "--detach", "0.5": "--background", "current": "--no-wait"}
CLI_VERSION = {"0.1.65": "0.1.65-beta.5", "0.5": "0.5.0-beta.4", "current": "0.11.0-beta.5"}


@pytest.mark.parametrize("mode", sorted(RUN_FLAG))
async def test_run_takes_the_flag_of_its_cli_release_read_once(
    mode: str, tmp_path: Path, agent_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent creations share one `paseo --version`; the newest CLI gets `--no-wait`
    (its `-d` would warn on stderr), older ones the flag they document."""
    monkeypatch.setenv("FAKE_PASEO_VERSION", mode)
    log = tmp_path / "argv.jsonl"
    with FakePaseoDaemon(tmp_path / "home", time_scale=0.1) as daemon:
        client = _client(daemon, FAKE_PASEO_ARGV_LOG=str(log))
        agent = NewAgent(provider="mock", cwd=str(agent_cwd), title="flags")
        try:
            created = await asyncio.gather(*(client.create_agent(agent, INSTANT) for _ in range(3)))
            assert len({made.agent_id for made in created}) == 3
            assert (await client.cli_features()).version == CLI_VERSION[mode]
        finally:
            await client.aclose()
    assert cli_calls(log, "--version") == 1
    runs = [entry["argv"] for entry in argv_log(log) if entry["argv"][0] == "run"]
    assert [argv[1] for argv in runs] == [RUN_FLAG[mode]] * 3


@pytest.mark.parametrize("mode", sorted(RUN_FLAG))
async def test_no_cli_release_steers_and_nothing_is_run_for_it(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PASEO_VERSION", mode)
    log = tmp_path / "argv.jsonl"
    client = CliPaseoClient(
        str(FAKE_PASEO_BIN),
        host="127.0.0.1:1",  # no daemon: nothing but the version read may run
        base_env={**os.environ, "FAKE_PASEO_ARGV_LOG": str(log)},
    )
    for _ in range(2):
        with pytest.raises(PaseoError) as raised:
            await client.steer_agent_turn(str(uuid.uuid4()), "and mention the sea")
        assert raised.value.code == "STEER_UNSUPPORTED"
        assert raised.value.kind == PaseoErrorKind.UNSUPPORTED
        assert f"paseo CLI {CLI_VERSION[mode]}" in raised.value.message
    assert [entry["argv"] for entry in argv_log(log)] == [["--version"]]


@pytest.mark.parametrize(
    "version_script",
    ['echo "paseo (dev build)"', 'echo "fatal: cannot load" >&2; exit 1'],
    ids=["unparseable", "failing"],
)
async def test_an_unreadable_cli_version_falls_back_to_flags_every_release_takes(
    version_script: str,
    fake_daemon: FakePaseoDaemon,
    agent_cwd: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`-d` returns at once on every release (on the newest with a warning on stderr, which
    is not taken for an error)."""
    binary = tmp_path / "paseo"
    binary.write_text(
        f'#!/bin/sh\nif [ "$1" = "--version" ]; then {version_script}; exit; fi\n'
        f'exec "{FAKE_PASEO_BIN}" "$@"\n'
    )
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "argv.jsonl"
    client = CliPaseoClient(
        str(binary),
        host=fake_daemon.host,
        base_env={**os.environ, "FAKE_PASEO_ARGV_LOG": str(log)},
    )
    agent = NewAgent(provider="mock", cwd=str(agent_cwd), title="portable")
    try:
        with caplog.at_level(logging.WARNING, logger="app.paseo.cli.client"):
            created = await client.create_agent(agent, INSTANT)
    finally:
        await client.aclose()
    assert created.provider == "mock" and created.title == "portable"
    run = next(entry["argv"] for entry in argv_log(log) if entry["argv"][0] == "run")
    assert run[1] == "-d"
    assert any("flags every release takes" in record.getMessage() for record in caplog.records)


async def test_a_gateway_environment_with_both_daemon_selectors_works_on_the_newest_cli(
    tmp_path: Path, agent_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway's own environment names a home and a host (and an agent session it was
    started from): each child gets only the configured host, so no TARGET_AMBIGUOUS."""
    monkeypatch.setenv("FAKE_PASEO_VERSION", "current")
    log = tmp_path / "argv.jsonl"
    with FakePaseoDaemon(tmp_path / "home", time_scale=0.1) as daemon:
        monkeypatch.setenv("PASEO_HOME", str(daemon.home))
        monkeypatch.setenv("PASEO_HOST", "127.0.0.1:1")
        monkeypatch.setenv("PASEO_AGENT_ID", str(uuid.uuid4()))
        monkeypatch.setenv("PASEO_WORKSPACE_ID", "ws_of_the_shell")
        monkeypatch.setenv("FAKE_PASEO_ARGV_LOG", str(log))
        client = CliPaseoClient(
            str(FAKE_PASEO_BIN), host=daemon.host, home=str(daemon.home), timeout=30
        )
        agent = NewAgent(provider="mock", cwd=str(agent_cwd), title="one target")
        try:
            events = [event async for event in client.start_agent_turn(agent, INSTANT)]
            assert [row.title for row in await client.list_agents()] == ["one target"]
        finally:
            await client.aclose()
    ended = events[-1]
    assert isinstance(ended, TurnEnded) and ended.outcome == "completed", ended
    entries = [entry for entry in argv_log(log) if entry["argv"][0] != "daemon"]
    assert entries  # the client's children (the harness stopped the daemon with the same log)
    for entry in entries:
        names = set(entry["paseo_env"])
        assert "PASEO_HOST" in names
        assert not names & {"PASEO_HOME", "PASEO_AGENT_ID", "PASEO_WORKSPACE_ID"}, entry


async def test_a_home_alone_names_the_daemon_on_the_newest_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No host configured: the home is the one target, and the newest CLI finds the address
    its daemon published there."""
    monkeypatch.setenv("FAKE_PASEO_VERSION", "current")
    monkeypatch.setenv("PASEO_HOST", "127.0.0.1:1")  # inherited, and not handed on
    with FakePaseoDaemon(tmp_path / "home", time_scale=0.1) as daemon:
        client = CliPaseoClient(str(FAKE_PASEO_BIN), home=str(daemon.home), timeout=30)
        try:
            assert (await client.ping()).transport == "cli"
        finally:
            await client.aclose()
    assert "PASEO_HOST" not in client.runner.env
    assert client.runner.env["PASEO_HOME"] == str(daemon.home)


@pytest.mark.parametrize(
    ("mode", "code"), [("0.1.65", "INSPECT_FAILED"), ("current", "AGENT_NOT_FOUND")]
)
async def test_an_unknown_agent_is_not_found_whatever_the_cli_calls_it(
    mode: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PASEO_VERSION", mode)
    with FakePaseoDaemon(tmp_path / "home", time_scale=0.1) as daemon:
        client = _client(daemon)
        try:
            with pytest.raises(PaseoError) as raised:
                await client.inspect_agent(str(uuid.uuid4()))
            with pytest.raises(PaseoError) as turn:
                _ = [event async for event in client.prompt_agent_turn(str(uuid.uuid4()), "x")]
        finally:
            await client.aclose()
    assert raised.value.code == code
    assert raised.value.kind == turn.value.kind == PaseoErrorKind.NOT_FOUND


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("AGENT_NOT_FOUND", PaseoErrorKind.NOT_FOUND),
        ("TARGET_AMBIGUOUS", PaseoErrorKind.UNAVAILABLE),
        ("WORKSPACE_NOT_FOUND", PaseoErrorKind.INVALID_INPUT),
        ("DAEMON_UPDATE_REQUIRED", PaseoErrorKind.UNSUPPORTED),
        ("INVALID_ENV", PaseoErrorKind.INVALID_INPUT),
    ],
)
async def test_newer_cli_error_codes(tmp_path: Path, code: str, kind: PaseoErrorKind) -> None:
    """The CLI's JSON error is found after the lines the newer CLIs print before it."""
    binary = tmp_path / "paseo"
    binary.write_text(
        "#!/bin/sh\n"
        "echo 'Warning: `paseo run --background` (-d) is deprecated' >&2\n"
        "echo 'Created workspace ws_1 - project' >&2\n"
        f'printf \'{{\\n  "error": {{\\n    "code": "{code}",\\n'
        f'    "message": "m"\\n  }}\\n}}\\n\' >&2\n'
        "exit 1\n"
    )
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    client = CliPaseoClient(str(binary))
    with pytest.raises(PaseoError) as raised:
        await client.list_agents()
    assert (raised.value.code, raised.value.message, raised.value.kind) == (code, "m", kind)
