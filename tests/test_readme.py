"""README's walk-through runs as pasted: its `sh` blocks, in order, in one shell.

The blocks of "Try it without Paseo" and "Using it with curl" start the fake daemon and a
real gateway, create a session, stream a prompt and read the turn back. Only the ports and
the demo folder are changed (so the test never takes port 8000 or 6767 from anyone).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from app.paseo.daemon_config import load_daemon_file, parse_daemon_list
from tests.fakes.harness import FAKE_PASEO_BIN

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("## Try it without Paseo", "## Using it with curl", "## The OpenAI-compatible API")
# `sh` blocks run as they are; `python` blocks with this test's Python (which has `openai`).
CODE_BLOCK = re.compile(r"^```(sh|python)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
RUN_SECONDS = 180


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def readme_walkthrough() -> list[str]:
    """The `sh` blocks of the walk-through sections, in README order (a `python` block as the
    shell command that runs it)."""
    text = (ROOT / "README.md").read_text()
    blocks: list[str] = []
    for title in SECTIONS:
        start = text.index(title + "\n")
        end = text.find("\n## ", start + len(title))
        for language, code in CODE_BLOCK.findall(text[start : end if end > 0 else None]):
            blocks.append(code if language == "sh" else f"{sys.executable} - <<'PY'\n{code}PY\n")
    return blocks


def test_the_walkthrough_has_the_steps_a_new_user_needs() -> None:
    script = "\n".join(readme_walkthrough())
    steps = ("daemon start", "paseo-gateway serve", "/sessions", "/prompt", "TURN=", "/v1/", "kill")
    for step in steps:
        assert step in script


def test_readme_walkthrough_runs_as_pasted(tmp_path: Path) -> None:
    port, daemon_port = _free_port(), _free_port()
    script = "\n".join(readme_walkthrough())
    script = (
        script.replace("localhost:8000", f"127.0.0.1:{port}")
        .replace("127.0.0.1:6767", f"127.0.0.1:{daemon_port}")
        .replace("/tmp/paseo-demo", str(tmp_path))
        .replace(
            ".venv/bin/paseo-gateway serve", f"{sys.prefix}/bin/paseo-gateway serve --port {port}"
        )
    )
    env = {**os.environ, "PASEO_HOME": str(tmp_path)}
    shell = subprocess.Popen(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = shell.communicate(timeout=RUN_SECONDS)
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
            shell.wait()
        subprocess.run(
            [str(FAKE_PASEO_BIN), "daemon", "stop", "--home", str(tmp_path)],
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )
    assert shell.returncode == 0, output + (tmp_path / "gateway.log").read_text()
    assert "event: turn.completed" in output
    assert '"final_text": "stress-update-0stress-update-1stress-update-2"' in output
    assert '"status":"completed"' in output  # the turn read back
    # The OpenAI client's answer, then curl's stream of chunks on the same session.
    assert "\nstress-update-0stress-update-1stress-update-2\n" in output
    assert '"delta": {"content": "stress-update-0stress-update-1stress-update-2"}' in output
    assert "data: [DONE]" in output


def _section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(title + "\n")
    return text[start : text.find("\n## ", start + len(title))]


def test_the_several_daemons_examples_are_what_the_gateway_accepts(tmp_path: Path) -> None:
    """The section's daemon list and file parse as the gateway parses them at start, and the
    compose file hands both replicas that file as a secret kept out of git and the image."""
    section = _section("## Several daemons")
    [listed] = re.findall(r"^PASEO_GATEWAY_DAEMONS='([^']+)'$", section, re.MULTILINE)
    assert [spec.name for spec in parse_daemon_list(listed)] == ["build-1", "build-2"]
    [toml] = re.findall(r"^```toml\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    (tmp_path / "daemons.toml").write_text(toml)
    specs = load_daemon_file(tmp_path / "daemons.toml")
    assert [(spec.name, spec.workspace_roots) for spec in specs] == [
        ("build-1", ("/srv/work",)),
        ("gpu-1", ("/srv/work", "/srv/models")),
    ]
    compose = yaml.safe_load((ROOT / "compose.daemons.yaml").read_text())
    secret = compose["secrets"]["paseo-daemons"]["file"]
    for name in ("gateway-1", "gateway-2"):
        service = compose["services"][name]
        assert service["environment"]["PASEO_GATEWAY_DAEMONS_FILE"] == "/run/secrets/paseo-daemons"
        assert service["secrets"] == ["paseo-daemons"]
    for ignore in (".gitignore", ".dockerignore"):
        assert Path(secret).name in (ROOT / ignore).read_text().split()
