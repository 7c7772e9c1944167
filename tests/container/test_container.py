"""The container image, built from the Dockerfile and run like a deployment would run it.

The image is built with podman (or docker) and started with host networking, so the gateway
inside reaches a fake paseo daemon started on this machine; the fake `paseo` CLI is mounted
read-only into the container as its CLI (it needs only python3, which the image has), and the
database is SQLite in a named volume on /data. The tests then drive it over HTTP.

Without podman or docker these tests skip, and say so, unless CI is set: there a missing tool
is a failure. With podman the base image is `localhost/debian-python:bookworm`, made by
../shared/tools/container-base-image when missing (the machines here cannot pull from public
registries); PASEO_GATEWAY_TEST_BASE_IMAGE picks another one (with docker, the Dockerfile's
default is used unless it is set).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from tests.fakes.harness import FAKES_DIR, FakePaseoDaemon

pytestmark = [pytest.mark.container, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE_TOOL = ROOT.parent / "shared" / "tools" / "container-base-image"
LOCAL_BASE_IMAGE = "localhost/debian-python:bookworm"
BASE_IMAGE_ENV = "PASEO_GATEWAY_TEST_BASE_IMAGE"
IMAGE = "localhost/paseo-gateway:container-test"
BUILD_TIMEOUT_SECONDS = 900
START_TIMEOUT_SECONDS = 90

FAKE_CLI_DIR = "/opt/fake-paseo"
ADMIN_KEY = "pgw_container-test-admin-key-00000000000000"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
INSTANT_PROMPT = "emit 3 coalesced agent stream updates"
INSTANT_REPLY = "stress-update-0stress-update-1stress-update-2"
GATEWAY_UID = 10001


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(reason: str) -> NoReturn:
    """Skip (outside CI) or fail (in CI, where the image must really be built and run)."""
    if _in_ci():
        pytest.fail(f"{reason}; CI is set, so the container test must run", pytrace=False)
    pytest.skip(reason)


def _run(
    argv: list[str], timeout: float = 120, check: bool = False
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(argv[:3])} … exited {result.returncode}:\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}",
            pytrace=False,
        )
    return result


def _container_tool() -> str:
    """podman, else docker; either must answer `info` (docker needs a running engine)."""
    found = [tool for tool in ("podman", "docker") if shutil.which(tool)]
    if not found:
        _unavailable("neither podman nor docker is installed")
    problems = []
    for tool in found:
        try:
            info = _run([tool, "info"], timeout=60)
        except subprocess.TimeoutExpired:
            problems.append(f"`{tool} info` timed out")
            continue
        if info.returncode == 0:
            return tool
        problems.append(f"`{tool} info` failed: {info.stderr.strip()[-300:]}")
    _unavailable("; ".join(problems))


def _base_image(tool: str) -> str | None:
    """The BASE_IMAGE build argument (None: the Dockerfile's default)."""
    if chosen := os.environ.get(BASE_IMAGE_ENV):
        return chosen
    if tool != "podman":
        return None
    if _run(["podman", "image", "exists", LOCAL_BASE_IMAGE]).returncode == 0:
        return LOCAL_BASE_IMAGE
    if not BASE_IMAGE_TOOL.exists():
        _unavailable(f"{LOCAL_BASE_IMAGE} is missing and {BASE_IMAGE_TOOL} does not exist")
    made = _run([str(BASE_IMAGE_TOOL), LOCAL_BASE_IMAGE], timeout=BUILD_TIMEOUT_SECONDS)
    if made.returncode != 0:
        _unavailable(f"{BASE_IMAGE_TOOL} failed: {made.stderr.strip()[-1000:]}")
    return LOCAL_BASE_IMAGE


@pytest.fixture(scope="module")
def image() -> tuple[str, str]:
    """(tool, image): the project's image, built now (the layer cache keeps rebuilds short)."""
    tool = _container_tool()
    base = _base_image(tool)
    argv = [tool, "build", "-t", IMAGE]
    if tool == "podman":
        argv += ["--format", "docker"]  # keeps HEALTHCHECK (the OCI format has none)
    if base is not None:
        argv += ["--build-arg", f"BASE_IMAGE={base}"]
    _run([*argv, str(ROOT)], timeout=BUILD_TIMEOUT_SECONDS, check=True)
    return tool, IMAGE


@dataclass
class Container:
    tool: str
    name: str
    image: str
    url: str

    def exec(self, *argv: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
        as_user = ["--user", user] if user else []
        return _run([self.tool, "exec", *as_user, self.name, *argv], timeout=60)

    def logs(self) -> str:
        result = _run([self.tool, "logs", self.name], timeout=60)
        return (result.stdout + result.stderr)[-6000:]

    def state(self) -> dict[str, Any]:
        result = _run([self.tool, "inspect", self.name], timeout=60)
        if result.returncode != 0:
            return {}
        state: dict[str, Any] = json.loads(result.stdout)[0]["State"]
        return state


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def container(
    image: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Container]:
    """The image running on host networking against a fake daemon on this machine."""
    tool, image_name = image
    folder = tmp_path_factory.mktemp("container")
    project = folder / "project"
    project.mkdir()
    name = f"paseo-gateway-test-{uuid.uuid4().hex[:10]}"
    volume = f"{name}-data"
    port = _free_port()
    env = {
        "PASEO_GATEWAY_LISTEN_HOST": "127.0.0.1",
        "PASEO_GATEWAY_LISTEN_PORT": str(port),
        "PASEO_GATEWAY_PASEO_BIN": f"{FAKE_CLI_DIR}/paseo",
        "PASEO_GATEWAY_DEFAULT_PROVIDER": "mock",
        "PASEO_GATEWAY_DEFAULT_MODEL": "ten-second-stream",
        # A path on the daemon's machine (this one); the gateway only checks it as a path.
        "PASEO_GATEWAY_DEFAULT_CWD": str(project),
        "PASEO_GATEWAY_ADMIN_KEY": ADMIN_KEY,
        "PASEO_GATEWAY_SSE_PING_SECONDS": "1",
    }
    with FakePaseoDaemon(folder / "paseo-home", time_scale=0.1) as daemon:
        env["PASEO_GATEWAY_PASEO_HOST"] = daemon.host
        argv = [tool, "run", "--detach", "--name", name, "--network", "host"]
        argv += ["--volume", f"{volume}:/data"]
        argv += ["--volume", f"{FAKES_DIR}:{FAKE_CLI_DIR}:ro"]
        for key, value in env.items():
            argv += ["--env", f"{key}={value}"]
        try:
            _run([*argv, image_name], timeout=120, check=True)
            running = Container(tool, name, image_name, f"http://127.0.0.1:{port}")
            _wait_until_up(running)
            yield running
        finally:
            _run([tool, "rm", "--force", name], timeout=120)
            _run([tool, "volume", "rm", "--force", volume], timeout=120)


def _wait_until_up(container: Container) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{container.url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if not container.state().get("Running", False):
            pytest.fail(f"the container exited at start:\n{container.logs()}", pytrace=False)
        time.sleep(0.3)
    pytest.fail(f"/healthz did not answer in time:\n{container.logs()}", pytrace=False)


def _sse_events(response: httpx.Response) -> list[tuple[str, Any]]:
    """(event, data) pairs of a prompt stream, up to the terminal `turn.*` event."""
    events: list[tuple[str, Any]] = []
    event, data = "message", []
    for line in response.iter_lines():
        if line == "":
            if data:
                events.append((event, json.loads("\n".join(data))))
                if event.startswith("turn.") and event not in ("turn.started", "turn.queued"):
                    break
            event, data = "message", []
        elif line.startswith("event:"):
            event = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            data.append(line.partition(":")[2].removeprefix(" "))
    return events


def test_ready_and_docs(container: Container) -> None:
    """Database migrated, fake CLI found in the mount, daemon reached over host networking."""
    deadline = time.monotonic() + 30
    ready = httpx.get(f"{container.url}/readyz", timeout=30)
    while ready.status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
        ready = httpx.get(f"{container.url}/readyz", timeout=30)
    assert ready.status_code == 200, f"{ready.text}\n{container.logs()}"

    docs = httpx.get(f"{container.url}/docs", timeout=30)
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    schema = httpx.get(f"{container.url}/openapi.json", timeout=30)
    assert schema.status_code == 200
    assert "/sessions" in schema.json()["paths"]

    assert httpx.get(f"{container.url}/sessions", timeout=30).status_code == 401
    database = container.exec("test", "-s", "/data/paseo-gateway.db")
    assert database.returncode == 0, "the SQLite database is not in the /data volume"


def test_session_and_streamed_prompt(container: Container) -> None:
    with httpx.Client(base_url=container.url, headers=AUTH, timeout=60) as http:
        created = http.post("/sessions", json={"title": "container", "labels": {"t": "c"}})
        assert created.status_code == 201, created.text
        session = created.json()
        assert session["provider"] == "mock"
        assert session["status"] == "pending"

        prompt = {"prompt": INSTANT_PROMPT}
        with http.stream("POST", f"/sessions/{session['id']}/prompt", json=prompt) as response:
            assert response.status_code == 200, response.read().decode()
            assert response.headers["content-type"].startswith("text/event-stream")
            events = _sse_events(response)

        names = [name for name, _ in events]
        assert names[0] == "turn.started", names
        assert "agent.created" in names, names
        assert names[-1] == "turn.completed", f"{events}\n{container.logs()}"
        streamed = "".join(data["delta"] for name, data in events if name == "text")
        assert streamed == INSTANT_REPLY
        assert events[-1][1]["final_text"] == INSTANT_REPLY

        turn_id = events[0][1]["turn_id"]
        turn = http.get(f"/sessions/{session['id']}/turns/{turn_id}").json()
        assert turn["status"] == "completed"
        assert turn["final_text"] == INSTANT_REPLY
        again = http.get(f"/sessions/{session['id']}").json()
        assert again["agent_id"] == events[names.index("agent.created")][1]["agent_id"]


def test_runs_as_non_root_under_tini(container: Container) -> None:
    """tini is PID 1 (signals forwarded, orphans reaped) and the server its non-root child."""
    uid = container.exec("id", "-u")
    assert uid.returncode == 0 and uid.stdout.strip() == str(GATEWAY_UID), uid

    script = (
        "import json, pathlib\n"
        "procs = {}\n"
        "for p in pathlib.Path('/proc').iterdir():\n"
        "    if p.name.isdigit():\n"
        "        try:\n"
        "            argv = (p / 'cmdline').read_bytes().decode().split('\\0')\n"
        "            status = dict(line.split(':\\t', 1) for line in\n"
        "                          (p / 'status').read_text().splitlines() if ':\\t' in line)\n"
        "        except OSError:\n"
        "            continue\n"
        "        procs[p.name] = {'argv': argv, 'ppid': status['PPid'].strip(),\n"
        "                         'uid': status['Uid'].split()[0]}\n"
        "print(json.dumps(procs))\n"
    )
    listing = container.exec("python3", "-c", script)
    assert listing.returncode == 0, listing.stderr
    processes = json.loads(listing.stdout)
    assert Path(processes["1"]["argv"][0]).name == "tini", processes["1"]
    servers = [
        pid
        for pid, proc in processes.items()
        if any(arg.endswith("paseo-gateway") for arg in proc["argv"][:2])
        and "serve" in proc["argv"]
    ]
    assert len(servers) == 1, processes
    server = processes[servers[0]]
    assert server["ppid"] == "1", server
    assert server["uid"] == str(GATEWAY_UID), server


def test_image_config_and_contents(container: Container) -> None:
    """Non-root user, tini entrypoint, a HEALTHCHECK that passes; no build tools or pip."""
    inspected = json.loads(_run([container.tool, "image", "inspect", container.image]).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == f"{GATEWAY_UID}:{GATEWAY_UID}"
    assert config["Entrypoint"] == ["/usr/bin/tini", "--"]
    healthcheck = inspected.get("Healthcheck") or config.get("Healthcheck")
    assert healthcheck, "the image has no HEALTHCHECK (podman builds need --format docker)"
    test = healthcheck["Test"]
    assert test[0] == "CMD" and "/healthz" in " ".join(test)
    probe = container.exec(*test[1:])
    assert probe.returncode == 0, probe.stderr

    lean = container.exec(
        "sh",
        "-c",
        "! command -v gcc cc make npm pip pip3 >/dev/null"
        " && test ! -e /opt/venv/bin/pip && test ! -e /src && test ! -e /root/.cache"
        " && ! ls -d /opt/venv/lib/python3*/site-packages/tests 2>/dev/null"
        ' && test -z "$(ls -A /opt/paseo-cli/bin)"',
        user="0",
    )
    assert lean.returncode == 0, "build tools, pip, caches, tests or a CLI in the image"


def test_stops_promptly_on_sigterm(container: Container) -> None:
    """`stop` sends SIGTERM; tini hands it to the server, which exits cleanly (runs last)."""
    started = time.monotonic()
    stopped = _run([container.tool, "stop", "--time", "30", container.name], timeout=90)
    elapsed = time.monotonic() - started
    assert stopped.returncode == 0, stopped.stderr
    assert elapsed < 25, f"stop took {elapsed:.1f}s: SIGTERM did not reach the server"
    state = container.state()
    assert state.get("Running") is False
    logs = container.logs()
    assert "Application shutdown complete" in logs, logs
    # uvicorn finishes its shutdown and then re-raises SIGTERM: 128 + 15, as with any
    # server stopped by a signal; not 137 (SIGKILL after the grace period).
    assert state.get("ExitCode") in (0, 143), f"{state}\n{logs}"
