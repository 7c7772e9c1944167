"""Pins the fake `paseo` CLI and daemon (tests/fakes) to the recordings of the real CLI.

Recordings: tests/fixtures/paseo-samples (cli/NAME.out|.err|.rc and streams/*.jsonl), where the
agents' cwd was rewritten to /home/dev/project; ids, paths, hosts and timestamps are swapped
for ours before comparing bytes. The daemons run with a small FAKE_PASEO_TIME_SCALE.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.fake_paseo_common import js_trim
from tests.fakes.fake_paseo_versions import RELEASES
from tests.fakes.harness import FAKE_PASEO_BIN, FakePaseoDaemon, running_fake_processes

SAMPLES = Path(__file__).resolve().parent / "fixtures" / "paseo-samples"
RECORDED_CWD = "/home/dev/project"
SCALE = 0.05

pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason="paseo recordings not available")


# ---------------------------------------------------------------------------------------------
# helpers


def recorded(name: str) -> tuple[str, str, int | None]:
    """(stdout, stderr, rc) of one recorded invocation."""
    base = SAMPLES / "cli" / name

    def read(suffix: str) -> str:
        path = base.with_name(name + suffix)
        return path.read_text() if path.exists() else ""

    rc = read(".rc").strip()
    return read(".out"), read(".err"), int(rc) if rc else None


def swap(text: str, mapping: dict[str, str]) -> str:
    """Replace recorded values (ids, hosts, timestamps) by ours."""
    for old, new in mapping.items():
        text = text.replace(old, new)
    return text


def squeeze_cwd(text: str, cwd: str) -> str:
    """Collapse a cwd table cell (the recordings' path rewrite broke that column's padding)."""
    return re.sub(re.escape(cwd) + " +", "<CWD> ", text)


def keys(value: Any) -> Any:
    """The key structure (names and order) of a JSON value."""
    if isinstance(value, dict):
        return [(k, keys(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [keys(v) for v in value[:1]]
    return type(value).__name__


class Stream:
    """A long-running CLI child (attach, logs -f, send) whose output is collected."""

    live: list[Stream] = []

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        Stream.live.append(self)
        self.proc = subprocess.Popen(
            [str(FAKE_PASEO_BIN), *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.out = bytearray()
        self.err = bytearray()
        self.threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    @staticmethod
    def _pump(pipe: Any, sink: bytearray) -> None:
        for chunk in iter(lambda: pipe.read1(65536), b""):
            sink.extend(chunk)

    @property
    def text(self) -> str:
        return self.out.decode()

    def wait_for(self, needle: str, timeout: float = 60) -> None:
        """Until `needle` is in stdout; the deadline is generous (a loaded machine)."""
        deadline = time.monotonic() + timeout
        while needle not in self.text:
            assert time.monotonic() < deadline, f"{needle!r} not seen in {self.text[-400:]!r}"
            assert self.proc.poll() is None, f"exited early: {self.err.decode()!r}"
            time.sleep(0.01)

    def finish(self, sig: int | None = signal.SIGTERM, timeout: float = 10) -> int:
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        for thread in self.threads:
            thread.join(5)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.proc.stdout.close()
        self.proc.stderr.close()
        return rc


@pytest.fixture(scope="module", autouse=True)
def recorded_release() -> Iterator[None]:
    """The recordings are of 0.1.65: here the fake is that release, whatever
    FAKE_PASEO_VERSION the run was given, unless a test names another."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FAKE_PASEO_VERSION", "0.1.65")
        yield


@pytest.fixture(autouse=True)
def reap_streams() -> Iterator[None]:
    """A failed assertion must not leave attach/logs -f children running."""
    yield
    while Stream.live:
        stream = Stream.live.pop()
        if stream.proc.stdout is not None and not stream.proc.stdout.closed:
            stream.finish(sig=signal.SIGKILL)


@pytest.fixture(scope="module")
def project() -> Iterator[Path]:
    """A short working directory (shorter than /home/dev/project, for table layouts)."""
    path = Path(tempfile.mkdtemp(prefix="pp", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakePaseoDaemon]:
    with FakePaseoDaemon(tmp_path_factory.mktemp("paseo-home"), time_scale=SCALE) as fake:
        yield fake
    assert running_fake_processes(include_daemons=True, home=fake.home) == []


@pytest.fixture(scope="module")
def slow_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakePaseoDaemon]:
    """Turns long enough (a "ten-second" one takes 5 s) to be seen running on a busy machine."""
    with FakePaseoDaemon(tmp_path_factory.mktemp("slow-home"), time_scale=0.5) as fake:
        yield fake


def run(
    daemon: FakePaseoDaemon, cwd: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """One CLI call against the daemon."""
    return daemon.cli(*args, cwd=cwd, env=daemon.env(**env))


def run_json(daemon: FakePaseoDaemon, cwd: Path, *args: str) -> Any:
    """One successful --json call."""
    result = run(daemon, cwd, *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def mock_agent(daemon: FakePaseoDaemon, cwd: Path, prompt: str, *extra: str) -> str:
    """Create a mock agent and return its id."""
    created = run_json(daemon, cwd, "run", "--json", "--provider", "mock", *extra, "--", prompt)
    return str(created["agentId"])


# ---------------------------------------------------------------------------------------------
# parsing, placement, help


def test_version_and_recorded_help(daemon: FakePaseoDaemon, project: Path) -> None:
    assert run(daemon, project, "--version").stdout == "0.1.65-beta.5\n"
    result = run(daemon, project, "permit", "allow", "--help")
    out, _, rc = recorded("permit_allow")
    assert (result.stdout, result.returncode) == (out, rc)


def test_host_only_after_the_subcommand(daemon: FakePaseoDaemon, project: Path) -> None:
    for argv in (["--host", daemon.host, "ls"], ["--json", "--host", daemon.host, "ls"]):
        result = run(daemon, project, *argv)
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == "error: unknown option '--host'\n"
    agent_group = run(daemon, project, "agent", "--host", daemon.host, "ls")
    assert agent_group.stderr == "error: unknown option '--host'\n"
    env = daemon.env()
    env.pop("PASEO_HOST")
    ok = daemon.cli("ls", "--host", daemon.host, "--json", env=env, cwd=project)
    assert ok.returncode == 0 and isinstance(json.loads(ok.stdout), list)
    ok = daemon.cli("agent", "ls", f"--host={daemon.host}", "-o", "json", env=env, cwd=project)
    assert ok.returncode == 0 and ok.stdout.startswith("[")


def test_commander_errors_are_plain_text(daemon: FakePaseoDaemon, project: Path) -> None:
    result = run(daemon, project, "ls", "--json", "--limit", "1")
    assert (result.returncode, result.stderr) == (1, "error: unknown option '--limit'\n")
    result = run(daemon, project, "run", "--json", "--provider", "mock")
    assert result.stderr == "error: missing required argument 'prompt'\n"
    result = run(daemon, project, "run", "--json", "--title")
    assert result.stderr == "error: option '--title <title>' argument missing\n"
    _, err, rc = recorded("import_noprov")
    result = run(daemon, project, "import", "--json", "session-1")
    assert (result.stderr, result.returncode) == (err, rc)


def test_empty_ls_matches_recording(daemon: FakePaseoDaemon, tmp_path: Path) -> None:
    fresh = FakePaseoDaemon(tmp_path / "home", time_scale=SCALE)
    with fresh:
        for name, args in (("ls_json", ["ls", "--json"]), ("ls", ["ls"])):
            out, err, rc = recorded(name)
            result = fresh.cli(*args, cwd=tmp_path)
            assert (result.stdout, result.stderr, result.returncode) == (out, err, rc)


# ---------------------------------------------------------------------------------------------
# shapes of ls / inspect / run / send / wait


def test_run_detach_ls_inspect_shapes(slow_daemon: FakePaseoDaemon, project: Path) -> None:
    daemon = slow_daemon
    args = ["--provider", "mock", "--model", "ten-second-stream", "--label", "shape=1"]
    created = run_json(
        daemon, project, "run", "-d", "--json", *args, "--title", "mock detached", "x"
    )
    out, _, _ = recorded("run_detach_json")
    assert keys(created) == keys(json.loads(out))
    assert created | {"agentId": "-"} == json.loads(out) | {"agentId": "-", "cwd": str(project)}
    agent_id = created["agentId"]
    table = run(daemon, project, "run", "-d", *args, "--title", "Say hello table", "x").stdout
    out, _, _ = recorded("run_detach_table")
    table_id = table.splitlines()[1].split()[0]
    expected = swap(
        squeeze_cwd(out, RECORDED_CWD), {"244953bc-cb25-4552-b04a-59dad8a47191": table_id}
    )
    assert squeeze_cwd(table, str(project)) == expected
    run(daemon, project, "delete", table_id)
    listed = run_json(daemon, project, "ls", "--json", "--label", "shape=1")
    assert [a["status"] for a in listed] == ["running"]
    out, _, _ = recorded("ls_label")
    assert keys(listed) == keys(json.loads(out))
    assert run(daemon, project, "wait", "--json", agent_id).returncode == 0
    listed = run_json(daemon, project, "ls", "--json", "--label", "shape=1")
    expected = json.loads(out)[0] | {"id": agent_id, "shortId": agent_id[:7], "cwd": str(project)}
    assert listed == [expected]
    assert run_json(daemon, project, "ls", "--json", "--label", "shape=1", "--label", "x=y") == []
    detail = run_json(daemon, project, "inspect", "--json", agent_id[:9])
    out, _, _ = recorded("inspect_json")
    assert keys(detail) == keys(json.loads(out))
    assert detail["LastUsage"] == {
        "InputTokens": 128,
        "OutputTokens": 1871,
        "CachedTokens": 0,
        "CostUsd": 0,
    }
    recorded_detail = json.loads(out)
    stable = ("LastUsage", "Id", "Cwd", "CreatedAt", "UpdatedAt")
    assert {k: v for k, v in detail.items() if k not in stable} == {
        k: v for k, v in recorded_detail.items() if k not in stable
    }


def test_inspect_table_layout(daemon: FakePaseoDaemon, project: Path) -> None:
    agent_id = mock_agent(
        daemon, project, "hi", "--model", "ten-second-stream", "--title", "mock detached"
    )
    detail = run_json(daemon, project, "inspect", "--json", agent_id)
    out, _, _ = recorded("inspect_table")
    usage = detail["LastUsage"]
    expected = swap(
        out,
        {
            "ae929f91-5af0-4563-bdc4-f0263ea128a4": agent_id,
            "2026-11-21T12:11:08.565Z": detail["CreatedAt"],
            "2026-11-21T12:11:18.575Z": detail["UpdatedAt"],
        },
    )
    usage_text = (
        f"InputTokens: {usage['InputTokens']}, OutputTokens: {usage['OutputTokens']}, "
        "CachedTokens: 0, CostUsd: $0.00"
    )
    rows = {"Cwd": str(project), "LastUsage": usage_text}
    for key, value in rows.items():  # rewritten path and different usage: same layout rule
        expected = re.sub(rf"(?m)^{key} .*$", key.ljust(20) + value.ljust(74), expected)
    assert run(daemon, project, "inspect", agent_id).stdout == expected


def test_ls_table_and_running_sort(daemon: FakePaseoDaemon, project: Path) -> None:
    ids = []
    for title in ("mock detached", "Say hello table"):
        ids.append(
            mock_agent(
                daemon,
                project,
                "emit synthetic plan approval",
                "--model",
                "ten-second-stream",
                "--title",
                title,
                "--label",
                "table=2",
                "-d",
            )
        )
        time.sleep(0.01)
    out, _, _ = recorded("ls_table2")
    expected = swap(squeeze_cwd(out, RECORDED_CWD), {"244953b": ids[1][:7], "ae929f9": ids[0][:7]})
    table = run(daemon, project, "ls", "--label", "table=2").stdout
    assert squeeze_cwd(table, str(project)) == expected
    listed = run_json(daemon, project, "ls", "--json", "--label", "table=2")
    assert [a["id"] for a in listed] == ids[::-1]
    for agent_id in ids:
        run(daemon, project, "delete", "--json", agent_id)


def test_run_without_title_and_unknown_model(daemon: FakePaseoDaemon, project: Path) -> None:
    prompt = "emit 1 coalesced agent stream updates"
    result = run_json(
        daemon, project, "run", "--json", "--provider", "mock", "--model", "nope", prompt
    )
    out, _, _ = recorded("run_badmodel")
    assert result | {"agentId": "-"} == json.loads(out) | {"agentId": "-", "cwd": str(project)}
    run_q = run(daemon, project, "run", "-q", "--provider", "mock", prompt)
    assert re.fullmatch(r"[0-9a-f-]{36}\n", run_q.stdout)


def test_send_no_wait_then_wait_and_logs(daemon: FakePaseoDaemon, project: Path) -> None:
    agent_id = mock_agent(daemon, project, "emit 3 coalesced agent stream updates")
    out, _, _ = recorded("logs_fast")
    assert run(daemon, project, "logs", agent_id).stdout == out
    sent = run_json(
        daemon,
        project,
        "send",
        "--json",
        "--no-wait",
        agent_id[:8],
        "emit 2 coalesced agent stream updates",
    )
    out, _, _ = recorded("send_during_follow")
    assert sent == json.loads(out) | {"agentId": agent_id[:8]}
    waited = run_json(daemon, project, "wait", "--json", "--timeout", "30s", agent_id)
    transcript = recorded("logs_fast2")[0].rstrip("\n")
    assert waited == {
        "agentId": agent_id,
        "status": "idle",
        "message": f"Agent is idle.\nLast 5 activity items:\n{transcript}",
    }
    assert run(daemon, project, "logs", agent_id).stdout == recorded("logs_fast2")[0]
    assert (
        run(daemon, project, "logs", "--tail", "1", agent_id).stdout
        == "stress-update-0stress-update-1\n"
    )
    assert run(daemon, project, "logs", "--tail", "0", agent_id).stdout == ""
    completed = run_json(
        daemon, project, "send", "--json", agent_id, "--prompt", "emit 1 agent stream updates"
    )
    assert completed == {
        "agentId": agent_id,
        "status": "completed",
        "message": "Agent completed processing the message",
    }
    tail = run(daemon, project, "logs", "--tail", "2", agent_id).stdout
    assert tail == "[User] emit 1 agent stream updates\n[Tasks]\n- [x] stress-update-0\n"


def test_send_prompt_sources(daemon: FakePaseoDaemon, project: Path, tmp_path: Path) -> None:
    agent_id = mock_agent(daemon, project, "emit 1 coalesced agent stream updates")
    prompt_file = tmp_path / "prompt.txt"
    prompt_file.write_text("emit 2 coalesced agent stream updates\n")
    both = run(daemon, project, "send", "--json", agent_id, "x", "--prompt", "y")
    assert json.loads(both.stderr)["error"]["code"] == "CONFLICTING_PROMPT_INPUT"
    missing = run(daemon, project, "send", "--json", agent_id)
    assert (missing.returncode, json.loads(missing.stderr)["error"]["code"]) == (
        1,
        "MISSING_PROMPT",
    )
    unreadable = run(daemon, project, "send", "--json", f"--prompt-file={tmp_path}/nope", agent_id)
    assert json.loads(unreadable.stderr)["error"]["code"] == "PROMPT_FILE_READ_ERROR"
    log = tmp_path / "argv.jsonl"
    ok = run(
        daemon,
        project,
        "send",
        "--json",
        f"--prompt-file={prompt_file}",
        "--",
        agent_id,
        FAKE_PASEO_ARGV_LOG=str(log),
    )
    assert json.loads(ok.stdout)["status"] == "completed"
    entry = json.loads(log.read_text())
    assert {"PASEO_HOME", "PASEO_HOST"} <= set(entry.pop("paseo_env"))
    assert entry == {
        "argv": ["send", "--json", f"--prompt-file={prompt_file}", "--", agent_id],
        "env_PASEO_HOST_set": True,
        "prompt": "emit 2 coalesced agent stream updates\n",
    }


# Exactly what JavaScript's String.prototype.trim() removes (WhiteSpace + LineTerminator).
JS_TRIMMED = {
    *"\t\n\v\f\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff",
    *(chr(c) for c in range(0x2000, 0x200B)),
}


def test_js_trim_is_exactly_the_javascript_set() -> None:
    assert all(
        js_trim(f"{ch}x{ch}") == ("x" if ch in JS_TRIMMED else f"{ch}x{ch}")
        for ch in map(chr, range(0x110000))
    )
    # Where Python's str.strip() differs.
    assert js_trim("\x1c\x1d\x1e\x1fx\x85") == "\x1c\x1d\x1e\x1fx\x85"
    assert js_trim("\ufeff x \ufeff") == "x"


def test_a_first_prompt_is_recorded_trimmed_and_a_later_one_as_sent(
    daemon: FakePaseoDaemon, project: Path, tmp_path: Path
) -> None:
    log = tmp_path / "argv.jsonl"
    raw_run = "\n  \u3000emit 2 coalesced agent stream updates\nsecond line of the prompt\n\ufeff"
    created = run(
        daemon,
        project,
        "run",
        "--json",
        "--provider",
        "mock",
        "--",
        raw_run,
        FAKE_PASEO_ARGV_LOG=str(log),
    )
    assert created.returncode == 0, created.stderr
    agent_id = json.loads(created.stdout)["agentId"]
    assert json.loads(created.stdout)["status"] == "completed"  # the magic phrase still worked
    first = "emit 2 coalesced agent stream updates\nsecond line of the prompt"
    assert run(daemon, project, "logs", agent_id).stdout == (
        f"[User] {first}\nstress-update-0stress-update-1\n"
    )
    # Leading \x1c and trailing \x85 are not JS whitespace: they stay; the rest goes.
    raw_send = "\t \x1c emit 1 coalesced agent stream updates\nmore \x85\u2028\ufeff \r\n"
    sent = run(
        daemon,
        project,
        "send",
        "--json",
        agent_id,
        "--prompt",
        raw_send,
        FAKE_PASEO_ARGV_LOG=str(log),
    )
    assert json.loads(sent.stdout)["status"] == "completed", sent.stderr
    second = "\x1c emit 1 coalesced agent stream updates\nmore \x85"
    stress = "stress-update-0stress-update-1"
    assert run(daemon, project, "logs", agent_id).stdout == (
        f"[User] {first}\n{stress}\n[User] {second}\nstress-update-0\n"
    )
    waited = run_json(daemon, project, "wait", "--json", agent_id)
    assert waited["message"].endswith(f"[User] {second}\nstress-update-0")
    # The argv log keeps what the CLI was given.
    assert [json.loads(line)["prompt"] for line in log.read_text().splitlines()] == [
        raw_run,
        raw_send,
    ]
    # `logs` trims each block; attach prints the record raw: the later prompt as sent.
    attach = Stream(["attach", agent_id], daemon.env(), project)
    attach.wait_for(f"\n[User] {raw_send}\nstress-update-0")
    assert attach.finish() == 0
    assert attach.text == (
        f"Attaching to agent {agent_id[:7]}...\n(Press Ctrl+C to detach)\n\n"
        f"\n[User] {first}\n{stress}\n[User] {raw_send}\nstress-update-0"
        "\n\nDetaching from agent...\n"
    )
    blank = run(daemon, project, "send", "--json", agent_id, "\ufeff\u3000 \n\u2029")
    assert json.loads(blank.stderr)["error"]["code"] == "MISSING_PROMPT"
    blank_run = run(daemon, project, "run", "--json", "--provider", "mock", "\u00a0\t")
    assert json.loads(blank_run.stderr)["error"]["code"] == "MISSING_PROMPT"


def test_prompt_with_trailing_newline_from_a_file(
    daemon: FakePaseoDaemon, project: Path, tmp_path: Path
) -> None:
    agent_id = mock_agent(daemon, project, "emit 1 coalesced agent stream updates\n")
    prompt_file = tmp_path / "prompt.txt"
    prompt_file.write_text("\nemit 2 agent stream updates\n\n")
    sent = run_json(daemon, project, "send", "--json", "--prompt-file", str(prompt_file), agent_id)
    assert sent["status"] == "completed"
    assert run(daemon, project, "logs", agent_id).stdout == (
        "[User] emit 1 coalesced agent stream updates\nstress-update-0\n"
        "[User] emit 2 agent stream updates\n[Tasks]\n- [x] stress-update-0\n"
        "[Tasks]\n- [ ] stress-update-1\n"
    )


def test_double_dash_keeps_dash_prompts(daemon: FakePaseoDaemon, project: Path) -> None:
    created = run_json(
        daemon, project, "run", "-d", "--json", "--provider=mock", "--title=dash", "--", "-q"
    )
    agent_id = created["agentId"]
    assert created["title"] == "dash"
    sent = run(daemon, project, "send", "--json", "--no-wait", "--", agent_id, "--json")
    assert json.loads(sent.stdout)["status"] == "sent"
    run(daemon, project, "stop", "--json", agent_id)
    logs = run(daemon, project, "logs", "--filter", "text", agent_id).stdout
    assert logs.startswith("[User] -q\n") and "[User] --json\n" in logs
    unknown = run(daemon, project, "send", "--json", agent_id, "-x")
    assert unknown.stderr == "error: unknown option '-x'\n"


# ---------------------------------------------------------------------------------------------
# recorded errors


RECORDED_ERRORS = [
    ("inspect_missing", ["inspect", "--json", "does-not-exist"]),
    ("inspect_missing_table", ["inspect", "does-not-exist"]),
    ("send_missing", ["send", "--json", "does-not-exist", "hi"]),
    ("send_missing_text", ["send", "does-not-exist", "hi"]),
    ("stop_missing", ["stop", "--json", "does-not-exist"]),
    ("archive_missing", ["archive", "--json", "does-not-exist"]),
    ("logs_missing", ["logs", "does-not-exist"]),
    ("wait_missing", ["wait", "--json", "does-not-exist"]),
    ("run_noprov", ["run", "--json", "Say hello"]),
    ("run_badprov", ["run", "--json", "--provider", "nosuch", "Say hello"]),
    ("import_mock", ["import", "--json", "--provider", "mock", "abc"]),
    ("import_mock_table", ["import", "--provider", "mock", "abc"]),
    ("import_codex", ["import", "--json", "--provider", "codex", "abc"]),
    ("import_acp", ["import", "--json", "--provider", "acp", "abc"]),
]


@pytest.mark.parametrize(("name", "argv"), RECORDED_ERRORS, ids=[n for n, _ in RECORDED_ERRORS])
def test_recorded_errors(
    daemon: FakePaseoDaemon, project: Path, name: str, argv: list[str]
) -> None:
    out, err, rc = recorded(name)
    result = run(daemon, project, *argv)
    assert (result.stdout, result.stderr, result.returncode) == (out, err, rc)


def test_down_daemon_errors(tmp_path: Path) -> None:
    fake = FakePaseoDaemon(tmp_path / "home", time_scale=SCALE).start()
    fake.stop()
    mapping = {"127.0.0.1:46767": fake.host}
    cases = {
        "down_ls": ["ls"],
        "down_ls_json": ["ls", "--json"],
        "down_inspect": ["inspect", "--json", "abc"],
        "down_run": ["run", "--json", "--provider", "mock", "hi"],
        "down_send": ["send", "--json", "abc", "hi"],
        "down_send_text": ["send", "abc", "hi"],
        "down_stop": ["stop", "--json", "abc"],
        "down_wait": ["wait", "--json", "abc"],
        "down_archive": ["archive", "--json", "abc"],
        "down_logs": ["logs", "abc"],
        "down_provider": ["provider", "ls", "--json"],
    }
    for name, argv in cases.items():
        out, err, rc = recorded(name)
        result = fake.cli(*argv, cwd=tmp_path)
        assert (result.stdout, result.stderr, result.returncode) == (out, swap(err, mapping), rc), (
            name
        )
    models = fake.cli("provider", "models", "mock", "--json", cwd=tmp_path)
    assert (models.returncode, json.loads(models.stderr)["error"]["code"]) == (1, "UNKNOWN_ERROR")
    status = fake.cli("daemon", "status", "--json", "--home", str(fake.home), cwd=tmp_path)
    out, _, rc = recorded("down_status")
    assert (keys(json.loads(status.stdout)), status.returncode) == (keys(json.loads(out)), rc)
    assert json.loads(status.stdout)["localDaemon"] == "stopped"


def test_claude_fails_and_unavailable_providers(daemon: FakePaseoDaemon, project: Path) -> None:
    failed = run_json(daemon, project, "run", "--json", "--provider", "claude", "hello")
    assert failed["status"] == "error" and failed["title"] == "hello"
    assert run_json(daemon, project, "wait", "--json", failed["agentId"]) == {
        "agentId": failed["agentId"],
        "status": "error",
        "message": "Claude Code process exited with code 1",
    }
    assert run_json(daemon, project, "inspect", "--json", failed["agentId"])["Status"] == "error"
    resent = run_json(daemon, project, "send", "--json", failed["agentId"], "again")
    assert resent["status"] == "error"
    codex = run(daemon, project, "run", "--json", "--provider", "codex/gpt-5", "hi")
    assert json.loads(codex.stderr) == {
        "error": {
            "code": "AGENT_CREATE_FAILED",
            "message": "Failed to create agent: Provider 'codex' is not available. "
            "Available providers: claude, mock",
        }
    }


def test_provider_ls_and_models(daemon: FakePaseoDaemon, project: Path) -> None:
    for name, args in (
        ("provider_ls2", ["provider", "ls", "--json"]),
        ("provider_ls_table", ["provider", "ls"]),
        ("provider_models", ["provider", "models", "mock", "--json"]),
    ):
        out, _, rc = recorded(name)
        result = run(daemon, project, *args)
        assert (result.stdout, result.returncode) == (out, rc), name
    bad = run(daemon, project, "provider", "models", "nosuch", "--json")
    assert json.loads(bad.stderr)["error"]["code"] == "PROVIDER_ERROR"


# ---------------------------------------------------------------------------------------------
# streaming, permissions, stop, archive, import


def test_attach_replays_then_streams_live(daemon: FakePaseoDaemon, project: Path) -> None:
    agent_id = mock_agent(
        daemon, project, "emit 3 coalesced agent stream updates", "--model", "ten-second-stream"
    )
    env = daemon.env()
    attach = Stream(["attach", agent_id], env, project)
    follow = Stream(["logs", "-f", "--tail", "2", agent_id], env, project)
    header = f"Attaching to agent {agent_id[:7]}...\n(Press Ctrl+C to detach)\n\n"
    stress = "stress-update-0stress-update-1stress-update-2"
    replay = f"\n[User] emit 3 coalesced agent stream updates\n{stress}"
    attach.wait_for(header + replay)
    missing = run(daemon, project, "attach", "nope")
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr == "Error: Failed to attach to agent: Agent not found: nope\n"
    follow.wait_for("--- Following logs (last 2 entries; Ctrl+C to stop) ---\n\n")
    sent = run_json(daemon, project, "send", "--json", agent_id, "write a haiku")
    assert sent["status"] == "completed"
    attach.wait_for("_(end of synthetic stream)_\n")
    follow.wait_for("_(end of synthetic stream)_\n")
    time.sleep(0.2)
    assert attach.proc.poll() is None and follow.proc.poll() is None
    assert attach.finish() == 0 and follow.finish() == 0
    lines = (SAMPLES / "streams/ten-second-turn.jsonl").read_text().splitlines()
    streams = [json.loads(line) for line in lines]
    recorded_attach = "".join(
        e.get("data", "") for e in streams if e.get("proc") == "attach" and e.get("fd") == "stdout"
    )
    recorded_logs = "".join(e.get("data", "") for e in streams if e.get("proc") == "logs")
    assert attach.text.startswith(header + replay + "\n[User] write a haiku\n## Cycle 1")
    assert attach.text.endswith(
        "This kind of behavior\n\n_(end of synthetic stream)_\n\n\nDetaching from agent...\n"
    )
    assert attach.err == b""
    assert strip_reasoning_markers(attach.text) == strip_reasoning_markers(
        recorded_attach.replace("78eb043", agent_id[:7])
    )
    assert follow.text.startswith(
        f"[User] emit 3 coalesced agent stream updates\n{stress}\n"
        "\n--- Following logs (last 2 entries; Ctrl+C to stop) ---\n\n[User] write a haiku\n"
    )
    assert run(daemon, project, "logs", agent_id).stdout == recorded_logs


def test_attach_drop_skips_live_events_after_the_replay(
    slow_daemon: FakePaseoDaemon, project: Path
) -> None:
    """FAKE_PASEO_ATTACH_DROP=K: attaching to a running agent loses its first K live timeline
    events, silently (one contiguous piece is missing); the timeline keeps them (a later
    attach replays them), and an idle
    agent's attach (the next turn) loses nothing."""
    agent_id = mock_agent(
        slow_daemon, project, "review the scroll anchor", "-d", "--model", "ten-second-stream"
    )
    env = slow_daemon.env(FAKE_PASEO_ATTACH_DROP="5")  # more than a run of tool events
    lossy = Stream(["attach", agent_id], env, project)
    end = "_(end of synthetic stream)_\n"
    lossy.wait_for(end)
    assert lossy.finish() == 0
    later = Stream(["attach", agent_id], env, project)
    later.wait_for(end)
    assert run_json(slow_daemon, project, "send", "--json", agent_id, INSTANT)["status"] == (
        "completed"
    )
    later.wait_for(f"{end}\n[User] {INSTANT}\nstress-update-0")  # the idle agent's next turn
    assert later.finish() == 0
    full = attach_content(later.text.split(f"\n[User] {INSTANT}\n")[0])
    seen = attach_content(lossy.text)
    kept = next((i for i, (x, y) in enumerate(zip(seen, full, strict=False)) if x != y), len(seen))
    missing = len(full) - len(seen)
    assert missing > 0 and full[kept + missing :] == seen[kept:]
    assert kept > len("\n[User] review the scroll anchor\n")  # after the replay's start
    # `full` is the later attach's replay: the timeline kept what the first attach lost.


def attach_content(text: str) -> str:
    """Attach output as text and reasoning characters only: no header, no tool lines, no
    reasoning markers (live reasoning arrives in chunks, a replay has it whole)."""
    text = text.split("(Press Ctrl+C to detach)\n\n", 1)[1].removesuffix(
        "\n\nDetaching from agent...\n"
    )
    text = re.sub(r"\n\[Tool: \w+\] \w+\n", "", text)
    return re.sub(r"\n\[Reasoning\] ([^\n]*)\n", r"\1", text)


def strip_reasoning_markers(text: str) -> str:
    """Attach output without reasoning chunks and `running` tool lines (their split is timing)."""
    text = re.sub(r"\n\[Reasoning\] [^\n]*\n", "", text)
    return re.sub(r"\n\[Tool: \w+\] running\n", "", text)


def test_permission_flow(daemon: FakePaseoDaemon, project: Path) -> None:
    prompt = "emit a synthetic plan approval"
    created = run_json(
        daemon, project, "run", "--json", "--provider", "mock", "--title", "plan", prompt
    )
    out, _, _ = recorded("run_plan")
    agent_id = created["agentId"]
    assert created == json.loads(out) | {"agentId": agent_id, "cwd": str(project)}
    waited = run_json(daemon, project, "wait", "--json", agent_id)
    assert waited["message"] == "Agent is waiting for permission: plan"
    detail = run_json(daemon, project, "inspect", "--json", agent_id)
    out, _, _ = recorded("inspect_plan")
    assert keys(detail) == keys(json.loads(out))
    assert detail["Status"] == "running" and detail["LastUsage"] is None
    assert detail["PendingPermissions"][0]["tool"] == "MockPlanApproval"
    assert detail["PendingPermissions"][0]["id"].startswith("mock-plan-")
    pending = [
        p for p in run_json(daemon, project, "permit", "ls", "--json") if p["agentId"] == agent_id
    ]
    out, _, _ = recorded("permit_ls")
    assert pending == swap_agent(json.loads(out), agent_id)
    allowed = run_json(daemon, project, "permit", "allow", agent_id, "--all", "--json")
    out, _, _ = recorded("permit_allow_all")
    assert allowed == swap_agent(json.loads(out), agent_id)
    out, _, _ = recorded("wait_plan")
    assert run_json(daemon, project, "wait", "--json", agent_id) == json.loads(out) | {
        "agentId": agent_id
    }
    again = run(daemon, project, "permit", "allow", agent_id, "--json")
    assert json.loads(again.stderr)["error"]["code"] == "NO_PENDING_PERMISSIONS"
    attach = Stream(["attach", agent_id], daemon.env(), project)
    attach.wait_for("(Press Ctrl+C to detach)\n\n\n[User] emit a synthetic plan approval\n")
    out, _, _ = recorded("send_plan")
    assert run_json(daemon, project, "send", "--json", agent_id, prompt) == json.loads(out) | {
        "agentId": agent_id
    }
    attach.wait_for("[Permission Required] MockPlanApproval\n")
    denied = run_json(daemon, project, "permit", "deny", agent_id, "mock-plan", "--json")
    assert [row["result"] for row in denied] == ["denied"]
    attach.wait_for("\n[Permission deny]\n")
    assert attach.finish() == 0
    assert attach.text.endswith(
        "\n[User] emit a synthetic plan approval\n"
        "\n[Permission Required] MockPlanApproval\n"
        "  Review the proposed plan before implementation starts.\n"
        "\n[Permission deny]\n\n\nDetaching from agent...\n"
    )


def swap_agent(rows: list[dict[str, Any]], agent_id: str) -> list[dict[str, Any]]:
    """Recorded permit rows with our agent id."""
    return [r | {"agentId": agent_id, "agentShortId": agent_id[:7]} for r in rows]


def test_stop_and_archive(daemon: FakePaseoDaemon, project: Path) -> None:
    agent_id = mock_agent(daemon, project, "Say hello", "-d", "--label", "stop=1")
    listed = run_json(daemon, project, "ls", "--json", "--label", "stop=1")
    assert listed[0]["status"] == "running" and listed[0]["provider"] == "mock/five-minute-stream"
    running = run(daemon, project, "archive", "--json", agent_id[:6])
    _, err, rc = recorded("archive_running")
    assert (running.stderr, running.returncode) == (swap(err, {"0938281": agent_id[:7]}), rc)
    _, err, _ = recorded("archive_running_table")
    assert run(daemon, project, "archive", agent_id).stderr == swap(err, {"0938281": agent_id[:7]})
    stopped = run_json(daemon, project, "stop", "--json", agent_id)
    out, _, _ = recorded("stop_json")
    assert stopped == json.loads(out) | {"agentIds": [agent_id]}
    logs = run(daemon, project, "logs", agent_id).stdout
    assert logs.startswith("[User] Say hello\n## Cycle 1") and "end of synthetic" not in logs
    for name, args in (("stop_idle_json", ["--json"]), ("stop_idle_table", [])):
        out, _, rc = recorded(name)
        result = run(daemon, project, "stop", *args, agent_id)
        assert (result.stdout, result.returncode) == (out, rc)
    archived = run_json(daemon, project, "archive", "--json", agent_id.upper()[:8])
    out, _, _ = recorded("archive_json")
    assert keys(archived) == keys(json.loads(out))
    assert archived["agentId"] == agent_id and archived["status"] == "archived"
    again = run(daemon, project, "archive", "--json", agent_id)
    _, err, rc = recorded("archive_again_json")
    mapping = {"244953b": agent_id[:7], "2026-11-21T12:14:25.948Z": archived["archivedAt"]}
    assert (again.stderr, again.returncode) == (swap(err, mapping), rc)
    assert run_json(daemon, project, "ls", "--json", "--label", "stop=1") == []
    assert [
        a["status"] for a in run_json(daemon, project, "ls", "-a", "--json", "--label", "stop=1")
    ] == ["closed"]
    detail = run_json(daemon, project, "inspect", "--json", agent_id)
    out, _, _ = recorded("inspect_archived")
    want = json.loads(out)
    assert keys(detail) == keys(want)
    for key in ("Status", "Archived", "LastUsage", "Capabilities", "AvailableModes", "Mode"):
        assert detail[key] == want[key], key
    assert detail["ArchivedAt"] == detail["UpdatedAt"] == archived["archivedAt"]
    run_json(daemon, project, "send", "--json", agent_id, "emit 1 coalesced agent stream updates")
    assert [
        a["status"] for a in run_json(daemon, project, "ls", "--json", "--label", "stop=1")
    ] == ["idle"]
    deleted = run_json(daemon, project, "delete", "--json", agent_id)
    assert deleted == {"deletedCount": 1, "agentIds": [agent_id]}
    missing = run(daemon, project, "delete", "--json", agent_id)
    assert json.loads(missing.stderr)["error"]["code"] == "DELETE_AGENT_FAILED"


def test_archive_table_layout(daemon: FakePaseoDaemon, project: Path) -> None:
    agent_id = mock_agent(daemon, project, "emit 1 coalesced agent stream updates")
    result = run(daemon, project, "archive", agent_id)
    out, _, rc = recorded("archive_table")
    archived_at = result.stdout.split()[-1]
    mapping = {
        "dd679a80-5033-4a48-9b72-8322ece12a73": agent_id,
        "2026-11-21T12:14:27.229Z": archived_at,
    }
    assert (result.stdout, result.returncode) == (swap(out, mapping), rc)


def test_send_replaces_running_turn(daemon: FakePaseoDaemon, project: Path) -> None:
    agent_id = mock_agent(daemon, project, "long turn", "-d")
    follow = Stream(["logs", "-f", agent_id], daemon.env(), project)
    follow.wait_for("## Cycle 1")
    result = run_json(
        daemon, project, "send", "--json", agent_id, "emit 1 coalesced agent stream updates"
    )
    assert result["status"] == "completed"
    follow.wait_for("stress-update-0\n")
    assert follow.finish() == 0
    logs = run(daemon, project, "logs", agent_id).stdout
    assert "end of synthetic" not in logs
    assert logs.endswith("[User] emit 1 coalesced agent stream updates\nstress-update-0\n")


def test_import(daemon: FakePaseoDaemon, project: Path) -> None:
    imported = run_json(
        daemon, project, "import", "--json", "--provider", "claude", f"--cwd={project}", "sess-1"
    )
    out, _, _ = recorded("import_claude")
    assert imported == json.loads(out) | {"agentId": imported["agentId"], "cwd": str(project)}
    listed = {a["id"]: a for a in run_json(daemon, project, "ls", "--json")}
    assert listed[imported["agentId"]]["name"] == "-"
    hidden = run_json(daemon, project, "import", "--json", "--provider", "claude", "sess-2")
    assert hidden["cwd"] == str(daemon.home)
    assert hidden["agentId"] not in {
        a["id"] for a in run_json(daemon, project, "ls", "-a", "--json")
    }
    assert run_json(daemon, project, "inspect", "--json", hidden["agentId"])["Provider"] == "claude"
    archive = run(daemon, project, "archive", "--json", hidden["agentId"])
    assert json.loads(archive.stderr)["error"]["code"] == "AGENT_NOT_FOUND"
    assert run_json(daemon, project, "delete", "--json", hidden["agentId"])["deletedCount"] == 1


# ---------------------------------------------------------------------------------------------
# daemon lifecycle, hosts, password, crash, restart


def test_daemon_status_stop_and_second_start(daemon: FakePaseoDaemon, project: Path) -> None:
    status = run_json(daemon, project, "daemon", "status", "--json", "--home", str(daemon.home))
    out, _, _ = recorded("status_json")
    assert keys(status) == keys(json.loads(out))
    assert (status["localDaemon"], status["connectedDaemon"], status["pid"]) == (
        "running",
        "reachable",
        daemon.pid,
    )
    assert status["listen"] == daemon.host
    table = run(daemon, project, "status", "--home", str(daemon.home)).stdout.splitlines()
    assert [line[:18].rstrip() for line in table[:4]] == [
        "KEY",
        "Server ID",
        "Local Daemon",
        "Connected Daemon",
    ]
    second = run(
        daemon, project, "daemon", "start", "--listen", "127.0.0.1:0", "--home", str(daemon.home)
    )
    assert second.returncode == 1
    assert f"Another Paseo daemon is already running (PID {daemon.pid})" in second.stderr


def test_host_resolution_and_unix_socket(tmp_path: Path) -> None:
    sock = tempfile.mktemp(prefix="paseo-", suffix=".sock", dir="/tmp")
    home = tmp_path / "home"
    env = FakePaseoDaemon(home, time_scale=SCALE).daemon_env()
    start = subprocess.run(
        [str(FAKE_PASEO_BIN), "daemon", "start", "--listen", sock, "--home", str(home)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert start.returncode == 0
    assert start.stdout.startswith("Daemon starting in background (PID ")
    assert start.stdout.endswith(f"Logs: {home}/daemon.log\n")
    client = {k: v for k, v in env.items() if k != "PASEO_NODE_ENV"}
    try:
        assert (
            subprocess.run(
                [str(FAKE_PASEO_BIN), "ls", "--json"],
                env=client,
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            == "[]\n"
        )
        explicit = subprocess.run(
            [str(FAKE_PASEO_BIN), "ls", "--json", "--host", f"unix://{sock}"],
            env=client | {"PASEO_HOME": str(tmp_path)},
            capture_output=True,
            text=True,
            check=False,
        )
        assert explicit.stdout == "[]\n"
        bare_port = subprocess.run(
            [str(FAKE_PASEO_BIN), "ls", "--json", "--host", "7777"],
            env=client,
            capture_output=True,
            text=True,
            check=False,
        )
        assert json.loads(bare_port.stderr)["error"]["code"] == "DAEMON_NOT_RUNNING"
    finally:
        stop = subprocess.run(
            [str(FAKE_PASEO_BIN), "daemon", "stop", "--json", "--home", str(home)],
            env=client,
            capture_output=True,
            text=True,
            check=False,
        )
    stopped = json.loads(stop.stdout)
    assert (stopped["action"], stopped["message"]) == ("stopped", "Daemon stopped gracefully")
    assert isinstance(stopped["pid"], str) and not Path(sock).exists()
    again = subprocess.run(
        [str(FAKE_PASEO_BIN), "daemon", "stop", "--json", "--home", str(home)],
        env=client,
        capture_output=True,
        text=True,
        check=False,
    )
    assert json.loads(again.stdout)["action"] == "not_running"


def test_tcp_listen_needs_host_or_paseo_listen(tmp_path: Path) -> None:
    production = {"PASEO_NODE_ENV": "production"}
    with FakePaseoDaemon(tmp_path / "home", time_scale=SCALE, extra_env=production) as fake:
        no_mock = fake.cli("run", "--json", "--provider", "mock", "hi", cwd=tmp_path)
        assert json.loads(no_mock.stderr)["error"]["message"] == (
            "Failed to create agent: Unknown provider 'mock'. "
            "Configured providers: claude, codex, copilot, opencode, pi."
        )
        listed = json.loads(fake.cli("provider", "ls", "--json", cwd=tmp_path).stdout)
        assert [p["provider"] for p in listed] == ["claude", "codex", "copilot", "opencode", "pi"]
        env = fake.env()
        del env["PASEO_HOST"]
        default = fake.cli("ls", "--json", env=env, cwd=tmp_path)
        message = json.loads(default.stderr)["error"]["message"]
        assert message.startswith("Cannot connect to daemon at localhost:6767: ")
        listen = fake.cli("ls", "--json", env=env | {"PASEO_LISTEN": fake.host}, cwd=tmp_path)
        assert listen.stdout == "[]\n"


def test_password(tmp_path: Path) -> None:
    with FakePaseoDaemon(tmp_path / "home", time_scale=SCALE, password="s3cret&x") as fake:
        assert fake.host.startswith("tcp://127.0.0.1:") and fake.host.endswith(
            "?password=s3cret%26x"
        )
        assert fake.cli("ls", "--json", cwd=tmp_path).stdout == "[]\n"
        plain = f"127.0.0.1:{fake.port}"
        refused = fake.cli("ls", "--json", env=fake.env(PASEO_HOST=plain), cwd=tmp_path)
        assert json.loads(refused.stderr)["error"] == {
            "code": "DAEMON_NOT_RUNNING",
            "message": f"Cannot connect to daemon at {plain}: Unexpected server response: 401",
            "details": "Start the daemon with: paseo daemon start",
        }


TRANSPORT_CLOSED = "Transport closed (code 1006)"


def test_kill_mid_turn_then_restart(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    fake = FakePaseoDaemon(tmp_path / "home", time_scale=SCALE).start()
    try:
        fast = mock_agent(fake, work, "emit 2 coalesced agent stream updates", "--title", "fast")
        slow = mock_agent(fake, work, "Say hello", "-d", "--title", "slow")
        env = fake.env()
        sender = Stream(["send", "--json", slow, "keep going"], env, work)
        waiter = Stream(["wait", "--json", slow], env, work)
        text_waiter = Stream(["wait", slow], env, work)
        attach = Stream(["attach", slow], env, work)
        follow = Stream(["logs", "-f", slow], env, work)
        attach.wait_for("[User] keep going\n## Cycle 1")
        follow.wait_for("[User] keep going\n")
        runner = Stream(["run", "--json", "--provider", "mock", "--title", "fg", "hi"], env, work)
        deadline = time.monotonic() + 60
        while len(run_json(fake, work, "ls", "--json")) < 3:
            assert time.monotonic() < deadline, "the foreground run never created its agent"
            time.sleep(0.05)
        time.sleep(0.2)
        fake.kill()
        assert sender.finish(sig=None) == 1 and sender.out == b""
        assert json.loads(sender.err)["error"] == {
            "code": "SEND_FAILED",
            "message": f"Failed to send message: {TRANSPORT_CLOSED}",
        }
        assert waiter.finish(sig=None) == 1
        assert json.loads(waiter.err)["error"] == {
            "code": "WAIT_FAILED",
            "message": f"Failed to wait for agent: {TRANSPORT_CLOSED}",
        }
        assert text_waiter.finish(sig=None) == 1
        assert text_waiter.err.decode() == f"Error: Failed to wait for agent: {TRANSPORT_CLOSED}\n"
        assert runner.finish(sig=None) == 1 and runner.out == b""
        assert json.loads(runner.err)["error"] == {
            "code": "AGENT_CREATE_FAILED",
            "message": f"Failed to create agent: {TRANSPORT_CLOSED}",
        }
        # attach and logs -f exit by themselves, without being signalled (the turn they follow
        # never ends: were they waiting for it, finish() would time out). The deadline is
        # generous; how fast they exit on an idle machine is not the point.
        assert attach.finish(sig=None, timeout=60) == 1
        assert follow.finish(sig=None, timeout=60) == 1
        assert attach.err.decode() == f"Error: Failed to attach to agent: {TRANSPORT_CLOSED}\n"
        assert "[User] keep going\n## Cycle 1" in attach.text
        assert "Detaching from agent" not in attach.text
        assert follow.err.decode() == f"Error: Failed to get logs: {TRANSPORT_CLOSED}\n"
        assert "--- Following logs (last 10 entries; Ctrl+C to stop) ---" in follow.text
        fake.start()
        listed = run_json(fake, work, "ls", "--json")
        out, _, _ = recorded("ls_after_restart")
        assert keys(listed) == keys(json.loads(out))
        statuses = {a["name"]: a["status"] for a in listed}
        assert statuses == {"fast": "closed", "slow": "closed", "fg": "closed"}
        assert run_json(fake, work, "inspect", "--json", fast)["Capabilities"]["Streaming"] is False
        resumed = run_json(
            fake, work, "send", "--json", fast, "emit 2 coalesced agent stream updates"
        )
        out, _, _ = recorded("send_after_restart")
        assert resumed == json.loads(out) | {"agentId": fast}
        out, _, _ = recorded("logs_after_restart")
        assert run(fake, work, "logs", "--tail", "2", fast).stdout == out
        fake.restart()
        assert {a["status"] for a in run_json(fake, work, "ls", "--json")} == {"closed"}
    finally:
        fake.stop()


def test_attach_and_follow_exit_when_the_daemon_stops(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    fake = FakePaseoDaemon(tmp_path / "home", time_scale=SCALE).start()
    try:
        agent_id = mock_agent(fake, work, "emit 1 coalesced agent stream updates")
        attach = Stream(["attach", agent_id], fake.env(), work)
        follow = Stream(["logs", "-f", "--tail", "0", agent_id], fake.env(), work)
        attach.wait_for("stress-update-0")
        follow.wait_for("Ctrl+C to stop) ---\n\n")
        fake.stop()
        assert attach.finish(sig=None, timeout=5) == 1
        assert attach.err.decode() == f"Error: Failed to attach to agent: {TRANSPORT_CLOSED}\n"
        assert follow.finish(sig=None, timeout=5) == 1
        assert follow.err.decode() == f"Error: Failed to get logs: {TRANSPORT_CLOSED}\n"
    finally:
        fake.stop()


def test_concurrent_clients_and_startup_delay(daemon: FakePaseoDaemon, project: Path) -> None:
    env = daemon.env()
    procs = [
        subprocess.Popen(
            [
                str(FAKE_PASEO_BIN),
                "run",
                "-d",
                "-q",
                "--provider",
                "mock",
                "--label",
                "burst=1",
                "x",
            ],
            env=env,
            cwd=project,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    ids = []
    for proc in procs:
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        ids.append(out.strip())
    listed = run_json(daemon, project, "ls", "--json", "--label", "burst=1")
    assert sorted(a["id"] for a in listed) == sorted(ids) and len(set(ids)) == 8
    stopped = run_json(daemon, project, "stop", "--json", "--all")
    assert set(ids) <= set(stopped["agentIds"])
    started = time.monotonic()
    slow = run(daemon, project, "ls", "-q", "--label", "burst=1", FAKE_PASEO_STARTUP_DELAY="0.4")
    assert time.monotonic() - started >= 0.4
    assert sorted(slow.stdout.split()) == sorted(i[:7] for i in ids)
    assert run_json(daemon, project, "delete", "--json", "--all")["deletedCount"] >= 8


def test_wait_timeouts_and_formats(daemon: FakePaseoDaemon, project: Path) -> None:
    agent_id = mock_agent(daemon, project, "Say hello", "-d")
    waited = run_json(daemon, project, "wait", "--json", "--timeout", "1", agent_id)
    again = f"Run `paseo wait {agent_id}` again to keep waiting."
    assert waited["status"] == "timeout"
    assert waited["message"].startswith(
        f"Agent did not finish within 1 second. {again}\nLast 5 activity items:\n"
    )
    bad = run(daemon, project, "wait", "--json", "--timeout", "soon", agent_id)
    assert (bad.returncode, json.loads(bad.stderr)["error"]["code"]) == (1, "INVALID_TIMEOUT")
    run_timeout = run_json(
        daemon, project, "run", "--json", "--provider", "mock", "--wait-timeout", "1s", "x"
    )
    assert run_timeout["status"] == "timeout"
    yaml = run(daemon, project, "inspect", "-o", "yaml", agent_id).stdout
    assert yaml.startswith(f"Id: {agent_id}\nName: Say hello\nProvider: mock\n")
    crash = run(daemon, project, "inspect", "--format", "xml", agent_id)
    assert crash.returncode == 1 and crash.stderr.startswith("Error: Unknown output format: xml\n")
    quiet = run(daemon, project, "stop", "-q", "--json", agent_id, run_timeout["agentId"])
    assert sorted(quiet.stdout.split()) == [agent_id]
    assert run(daemon, project, "stop", "-q", agent_id).stdout == "\n"
    updated = run_json(
        daemon,
        project,
        "agent",
        "update",
        "--json",
        agent_id,
        "--name",
        "renamed",
        "--label",
        "a=1,b=2",
    )
    assert updated == {"agentId": agent_id, "name": "renamed", "labels": "a=1,b=2"}
    assert run_json(daemon, project, "agent", "inspect", "--json", "renamed")["Id"] == agent_id


def test_provider_loading_and_disabled_config(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    providers = {p: {"enabled": False} for p in ("claude", "codex", "copilot", "opencode", "pi")}
    config = {
        "version": 1,
        "daemon": {"listen": "127.0.0.1:6767"},
        "agents": {"providers": providers},
    }
    (home / "config.json").write_text(json.dumps(config))
    with FakePaseoDaemon(home, time_scale=1.0) as fake:
        loading = fake.cli("provider", "ls", "--json", cwd=tmp_path)
        assert loading.stdout == recorded("provider_ls_cfg")[0]
        disabled = fake.cli("run", "--json", "--provider", "claude", "hi", cwd=tmp_path)
        _, err, rc = recorded("run_disabled")
        assert (disabled.stderr, disabled.returncode) == (err, rc)
        # Providers finish loading 3 s after the daemon started: wait for that, not for 3.1 s.
        loaded = recorded("provider_ls_cfg2")[0]
        deadline = time.monotonic() + 60
        while (table := fake.cli("provider", "ls", cwd=tmp_path)).stdout != loaded:
            assert time.monotonic() < deadline, table.stdout
            time.sleep(0.2)


# ---------------------------------------------------------------------------------------------
# releases (FAKE_PASEO_VERSION): the CLI of 0.5.0-beta.4 and of the newest Paseo

INSTANT = "emit 1 coalesced agent stream updates"
DEPRECATED_RUN_FLAG = RELEASES["current"].run_alias_warning


def start_release(
    mode: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakePaseoDaemon]:
    """A daemon of release `mode`; the CLI children of the test are of it too."""
    monkeypatch.setenv("FAKE_PASEO_VERSION", mode)
    with FakePaseoDaemon(home, time_scale=SCALE) as fake:
        yield fake
    assert running_fake_processes(include_daemons=True, home=fake.home) == []


@pytest.fixture
def v05(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePaseoDaemon]:
    yield from start_release("0.5", tmp_path / "home-0.5", monkeypatch)


@pytest.fixture
def current(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePaseoDaemon]:
    yield from start_release("current", tmp_path / "home-current", monkeypatch)


def cli_error(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON error of a failed --json call (exit 1, nothing on stdout)."""
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    error: dict[str, Any] = json.loads(result.stderr)["error"]
    return error


def without_target(env: dict[str, str], **extra: str) -> dict[str, str]:
    """An environment with neither PASEO_HOME nor PASEO_HOST, plus `extra`."""
    return {k: v for k, v in env.items() if k not in ("PASEO_HOME", "PASEO_HOST")} | extra


@pytest.mark.parametrize(
    ("mode", "version"),
    [
        (None, "0.1.65-beta.5"),
        ("0.1.65", "0.1.65-beta.5"),
        ("0.5", "0.5.0-beta.4"),
        ("current", "0.11.0-beta.5"),
    ],
)
def test_version_of_each_release(
    mode: str | None, version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if mode is None:
        monkeypatch.delenv("FAKE_PASEO_VERSION", raising=False)
    else:
        monkeypatch.setenv("FAKE_PASEO_VERSION", mode)
    for flag in ("--version", "-v"):
        printed = subprocess.run(
            [str(FAKE_PASEO_BIN), flag], capture_output=True, text=True, timeout=30, check=False
        )
        assert (printed.returncode, printed.stdout) == (0, version + "\n")


def test_05_run_background_and_its_workspace(v05: FakePaseoDaemon, project: Path) -> None:
    for flag in ("-d", "--background", "--detach"):
        made = run(v05, project, "run", flag, "--json", "--provider", "mock", "--", INSTANT)
        assert made.returncode == 0, made.stderr
        created = json.loads(made.stdout)  # stdout is the same JSON as 0.1.65's
        assert list(created) == ["agentId", "status", "provider", "cwd", "title"]
        assert created["status"] in ("created", "running")
        workspace = re.fullmatch(
            r"Created workspace (\S+) - (\S+)\nTip: pass --workspace \1 \(or set "
            r"PASEO_WORKSPACE_ID\) to run in an existing workspace\.\n",
            made.stderr,
        )
        assert workspace is not None and workspace[2] == project.name, made.stderr
    no_wait = run(v05, project, "run", "--no-wait", "--provider", "mock", "--", INSTANT)
    assert no_wait.returncode == 1
    assert no_wait.stderr.startswith("error: unknown option '--no-wait'")
    parent = created["agentId"]
    child = run(
        v05,
        project,
        "run",
        "-d",
        "--json",
        "--provider=mock",
        "--",
        INSTANT,
        **{"PASEO_AGENT_ID": parent},
    )
    assert child.stderr == ""  # a subagent goes into its caller's workspace
    child_id = json.loads(child.stdout)["agentId"]
    assert run_json(v05, project, "inspect", "--json", child_id)["ParentAgentId"] == parent
    orphan = run(
        v05,
        project,
        "run",
        "-d",
        "--json",
        "--provider=mock",
        "--",
        INSTANT,
        **{"PASEO_AGENT_ID": "nope"},
    )
    assert cli_error(orphan) == {
        "code": "AGENT_CREATE_FAILED",
        "message": "Failed to create agent: Caller agent not found: nope",
    }
    chosen = run(
        v05,
        project,
        "run",
        "-d",
        "--provider=mock",
        "--",
        INSTANT,
        **{"PASEO_WORKSPACE_ID": "ws_given"},
    )
    assert (chosen.returncode, chosen.stderr) == (0, "Using workspace ws_given\n")


def test_05_host_after_the_subcommand_and_inspect_failed(
    v05: FakePaseoDaemon, project: Path
) -> None:
    before = run(v05, project, "--host", v05.host, "ls")
    assert (before.returncode, before.stderr) == (1, "error: unknown option '--host'\n")
    assert "PASEO_HOME" in v05.env()  # with PASEO_HOST: the host wins, as in 0.1.65
    assert isinstance(run_json(v05, project, "ls", "--json", "--host", v05.host), list)
    assert cli_error(run(v05, project, "inspect", "--json", "nope")) == {
        "code": "INSPECT_FAILED",
        "message": "Failed to inspect agent: Agent not found: nope",
    }


def test_current_run_no_wait_and_its_deprecated_aliases(
    current: FakePaseoDaemon, project: Path
) -> None:
    # The default mock model streams for five (scaled) minutes: --no-wait must not wait.
    made = run(current, project, "run", "--no-wait", "--json", "--provider", "mock", "--", "work")
    assert made.returncode == 0 and "deprecated" not in made.stderr
    agent_id = json.loads(made.stdout)["agentId"]
    assert run_json(current, project, "inspect", "--json", agent_id)["Status"] == "running"
    assert run_json(current, project, "stop", "--json", agent_id)["stoppedCount"] == 1
    for flag in ("-d", "--background"):
        old = run(current, project, "run", flag, "--json", "--provider", "mock", "--", INSTANT)
        assert old.returncode == 0 and json.loads(old.stdout)["status"] in ("created", "running")
        assert old.stderr.splitlines()[0] == DEPRECATED_RUN_FLAG
    gone = run(current, project, "run", "--detach", "--provider", "mock", "--", INSTANT)
    assert gone.returncode == 1 and gone.stderr.startswith("error: unknown option '--detach'")
    schema = run(
        current, project, "run", "--json", "--no-wait", "--output-schema={}", "--", INSTANT
    )
    assert cli_error(schema)["message"] == "--output-schema cannot be used with --no-wait"


def test_current_one_daemon_target(current: FakePaseoDaemon, project: Path, tmp_path: Path) -> None:
    env = current.env()
    assert "PASEO_HOME" not in env and env["PASEO_HOST"] == current.host
    home, host = str(current.home), current.host
    bare = without_target(env)
    for argv in (
        ["--host", host, "ls", "--json"],
        ["ls", "--json", "--host", host],
        ["--home", home, "ls", "--json"],
        ["agent", "ls", f"--home={home}", "--json"],
    ):
        listed = current.cli(*argv, env=bare, cwd=project)
        assert listed.returncode == 0 and isinstance(json.loads(listed.stdout), list), argv
    # A home alone means the address its daemon published (a TCP port here).
    home_only = current.cli("ls", "--json", env=without_target(env, PASEO_HOME=home), cwd=project)
    assert home_only.returncode == 0, home_only.stderr
    both_env = run(current, project, "ls", "--json", PASEO_HOME=home)
    assert cli_error(both_env)["code"] == "TARGET_AMBIGUOUS"
    both_flags = current.cli("ls", "--json", "--home", home, "--host", host, env=bare, cwd=project)
    assert cli_error(both_flags)["code"] == "TARGET_AMBIGUOUS"
    # A flag overrides both environment selectors.
    flag_wins = run(current, project, "ls", "--json", "--host", host, PASEO_HOME=home)
    assert flag_wins.returncode == 0, flag_wins.stderr
    stopped = tmp_path / "stopped-home"
    nobody = current.cli("--home", str(stopped), "ls", "--json", env=bare, cwd=project)
    assert cli_error(nobody)["code"] == "DAEMON_NOT_RUNNING"


@pytest.mark.parametrize(
    "argv",
    [
        ["inspect", "nope"],
        ["agent", "inspect", "nope"],
        ["send", "nope", "hi"],
        ["agent", "send", "nope", "hi"],
        ["stop", "nope"],
        ["delete", "nope"],
        ["agent", "update", "nope", "--name", "x"],
        ["agent", "mode", "nope", "plan"],
        ["archive", "nope"],
    ],
)
def test_current_unknown_agent_is_agent_not_found(
    current: FakePaseoDaemon, project: Path, argv: list[str]
) -> None:
    assert cli_error(run(current, project, *argv, "--json")) == {
        "code": "AGENT_NOT_FOUND",
        "message": "Agent not found: nope",
        "details": 'Use "paseo ls" to list available agents',
    }


def test_current_wait_on_an_unknown_agent_stays_an_outcome(
    current: FakePaseoDaemon, project: Path
) -> None:
    """The fake's choice: `wait` reported no generic failure for an unknown id (it answers an
    `error` outcome, exit 0), so #6053 is not taken to change it."""
    waited = run_json(current, project, "wait", "--json", "nope")
    assert waited == {"agentId": "nope", "status": "error", "message": "Agent not found: nope"}


def test_current_permit_ls_prints_whole_ids(current: FakePaseoDaemon, project: Path) -> None:
    made = run(current, project, "run", "--no-wait", "--json", "--provider", "mock", "--", "x")
    agent_id = json.loads(made.stdout)["agentId"]
    asked = run(current, project, "send", "--json", agent_id, "emit a synthetic plan approval")
    assert json.loads(asked.stdout)["status"] == "permission"
    pending = run_json(current, project, "inspect", "--json", agent_id)["PendingPermissions"]
    rows = [
        p for p in run_json(current, project, "permit", "ls", "--json") if p["agentId"] == agent_id
    ]
    assert [row["id"] for row in rows] == [p["id"] for p in pending]
    run_json(current, project, "permit", "allow", agent_id, "--all", "--json")


def test_current_daemon_start_reads_only_its_config(
    tmp_path: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PASEO_VERSION", "current")
    home = tmp_path / "home"
    env = without_target(dict(os.environ), PASEO_NODE_ENV="development")

    def paseo(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(FAKE_PASEO_BIN), *args],
            env=env | extra,
            cwd=project,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    for flags, migration in (
        (["--listen", "127.0.0.1:0"], f"daemon config set daemon.listen 127.0.0.1:0 --home {home}"),
        (["--port", "7001"], f"daemon config set daemon.listen 127.0.0.1:7001 --home {home}"),
        (["--no-relay"], f"daemon config set daemon.relay.enabled false --home {home}"),
        (["--foreground"], f"daemon run --home {home}"),
    ):
        refused = paseo("daemon", "start", *flags, "--home", str(home))
        assert refused.returncode == 1 and f"Instead run: paseo {migration}\n" in refused.stderr
        assert not (home / "paseo.pid").exists()  # refused before any side effect
    saved = paseo("daemon", "config", "set", "daemon.listen", "127.0.0.1:0", "--home", str(home))
    assert saved.returncode == 0, saved.stderr
    assert json.loads(saved.stdout) == {
        "action": "saved",
        "applied": False,
        "message": "Saved; not applied to a running daemon",
        "nextCommand": f"paseo daemon start --home {json.dumps(str(home))}",
    }
    relay = paseo("daemon", "config", "set", "daemon.relay.enabled", "false", f"--home={home}")
    assert json.loads(relay.stdout)["action"] == "saved"
    config = json.loads((home / "config.json").read_text())
    assert config["daemon"]["listen"] == "127.0.0.1:0"
    assert config["daemon"]["relay"]["enabled"] is False
    got = paseo("daemon", "config", "get", "daemon.relay.enabled", "--home", str(home), "--json")
    assert json.loads(got.stdout)["value"] is False
    # An inherited PASEO_LISTEN no longer counts: the daemon listens where config.json says.
    started = paseo("daemon", "start", "--home", str(home), PASEO_LISTEN="127.0.0.1:1")
    assert started.returncode == 0, started.stderr
    try:
        listen = json.loads((home / "paseo.pid").read_text())["listen"]
        assert listen.startswith("127.0.0.1:") and listen != "127.0.0.1:1"
        assert f"listening on {listen}" in started.stdout
        assert paseo("ls", "--json", "--home", str(home)).stdout == "[]\n"
        live = paseo("daemon", "config", "set", "daemon.listen", listen, "--home", str(home))
        assert json.loads(live.stdout)["restartRequiredPaths"] == ["daemon.listen"]
    finally:
        stopped = paseo("daemon", "stop", "--home", str(home), "--json")
    assert json.loads(stopped.stdout)["action"] == "stopped"


def test_current_daemon_run_honours_paseo_listen(
    tmp_path: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_PASEO_VERSION", "current")
    home = tmp_path / "home"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = without_target(dict(os.environ), PASEO_NODE_ENV="development")
    daemon_env = env | {"PASEO_LISTEN": f"127.0.0.1:{port}"}
    foreground = Stream(["daemon", "run", "--home", str(home)], daemon_env, project)
    foreground.wait_for("Server listening on")
    assert json.loads((home / "paseo.pid").read_text())["listen"] == f"127.0.0.1:{port}"

    def paseo(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(FAKE_PASEO_BIN), *args],
            env=env,
            cwd=project,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert paseo("ls", "--json", "--host", f"127.0.0.1:{port}").stdout == "[]\n"
    again = paseo("daemon", "run", "--home", str(home), "--json")
    assert json.loads(again.stdout)["action"] == "already_running"
    assert (
        json.loads(paseo("daemon", "stop", "--home", str(home), "--json").stdout)["action"]
        == "stopped"
    )
    assert foreground.finish(sig=None) == 0
