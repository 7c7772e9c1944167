"""Helpers for pytest suites that drive the fake `paseo` CLI and its daemon.

    from tests.fakes.harness import FAKE_PASEO_BIN, FakePaseoDaemon, running_fake_processes

    with FakePaseoDaemon(tmp_path / "paseo-home", time_scale=0.1) as daemon:
        result = daemon.cli("ls", "--json")          # subprocess.CompletedProcess[str]
        env = daemon.env()                            # os.environ + PASEO_HOST (+ PASEO_HOME)

The daemon is started exactly like the real one of its release (FAKE_PASEO_VERSION): `paseo
daemon start --listen 127.0.0.1:0 --home HOME` before 0.9, `paseo daemon config set daemon.listen
... --home HOME` and `paseo daemon start --home HOME` from 0.9 on, with PASEO_NODE_ENV=development
so the mock provider exists; `restart()` keeps the same port, so a client configured with `host`
keeps working. See the `paseo` script for knobs.

The same address also speaks the real daemon's WebSocket protocol (/work/shared/paseo-daemon.md):

    async with websockets.connect(daemon.ws_url, subprotocols=daemon.ws_subprotocols) as ws: ...

`FakePaseoDaemon(home, listen="/tmp/x.sock")` listens on a unix socket instead; then `host` is
`unix:///tmp/x.sock`, `unix_path` the socket path, and a client connects with
`websockets.unix_connect(daemon.unix_path, "ws://localhost/ws")`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from tests.fakes.fake_paseo_common import RECEIVED_MEDIA, pid_alive
from tests.fakes.fake_paseo_versions import release

FAKES_DIR = Path(__file__).resolve().parent
FAKE_PASEO_BIN = FAKES_DIR / "paseo"
WORKER_ARG = "__fake-daemon-worker"
# The home of each daemon a host names: a CLI child handed only PASEO_HOST (as the gateway
# hands it) belongs to that daemon's home for `running_fake_processes`.
_HOMES_BY_HOST: dict[str, Path] = {}


class FakePaseoDaemon:
    """One fake daemon bound to a PASEO_HOME directory."""

    def __init__(
        self,
        home: Path,
        *,
        time_scale: float = 1.0,
        password: str | None = None,
        extra_env: dict[str, str] | None = None,
        listen: str | None = None,
    ) -> None:
        self.home = Path(home).absolute()
        self.time_scale = time_scale
        self.password = password
        self.extra_env = dict(extra_env or {})
        self.unix_path = listen.removeprefix("unix://") if listen else None
        self.port: int | None = None
        self.pid: int | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def daemon_env(self) -> dict[str, str]:
        """Environment of `paseo daemon start`: dev mode (mock provider), scale, password."""
        env = dict(os.environ)
        for key in ("PASEO_HOST", "PASEO_LISTEN", "PASEO_PASSWORD"):
            env.pop(key, None)
        env.update(
            PASEO_HOME=str(self.home),
            PASEO_NODE_ENV="development",
            FAKE_PASEO_TIME_SCALE=repr(self.time_scale),
        )
        if self.password is not None:
            env["PASEO_PASSWORD"] = self.password
        env.update(self.extra_env)
        return env

    def start(self) -> FakePaseoDaemon:
        """Start the daemon and return once it accepts connections (same port on a restart)."""
        self.home.mkdir(parents=True, exist_ok=True)
        listen = self.unix_path or f"127.0.0.1:{self.port or 0}"
        for args in self._start_commands(listen):
            result = subprocess.run(
                [str(FAKE_PASEO_BIN), *args],
                env=self.daemon_env(),
                cwd=self.home,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            if result.returncode != 0:
                raise RuntimeError(f"fake paseo daemon failed to start: {result.stderr.strip()}")
        info = json.loads((self.home / "paseo.pid").read_text())
        self.pid = int(info["pid"])
        if self.unix_path is None:
            self.port = int(str(info["listen"]).rsplit(":", 1)[1])
        _HOMES_BY_HOST[self.host] = self.home
        return self

    def _start_commands(self, listen: str) -> list[list[str]]:
        """How this release starts a daemon on `listen`: flags before 0.9; from 0.9 on
        `daemon start` reads only the saved configuration (paseo-versions.md §3.9)."""
        home = str(self.home)
        if not release(self.daemon_env()).persistent_daemon_config:
            return [["daemon", "start", "--listen", listen, "--home", home]]
        return [
            ["daemon", "config", "set", "daemon.listen", listen, "--string", "--home", home],
            ["daemon", "config", "set", "daemon.relay.enabled", "false", "--home", home],
            ["daemon", "start", "--home", home],
        ]

    def stop(self) -> None:
        """Graceful `paseo daemon stop`; SIGKILL if that fails."""
        if self.pid is None:
            return
        subprocess.run(
            [str(FAKE_PASEO_BIN), "daemon", "stop", "--home", str(self.home), "--timeout", "10"],
            env=self.daemon_env(),
            capture_output=True,
            timeout=30,
            check=False,
        )
        if pid_alive(self.pid):
            self.kill()
        self.pid = None

    def received_media(self) -> list[dict[str, Any]]:
        """What prompts carried besides their text, as the daemon got them (oldest first):
        `{agentId, messageId, text, images: [{data, mimeType}], attachments}` each."""
        path = self.home / RECEIVED_MEDIA
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    def kill(self) -> None:
        """SIGKILL the daemon (a crash): turns stop mid-flight, state is what was persisted."""
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pid_alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.pid = None

    def restart(self) -> FakePaseoDaemon:
        """Stop (if running) and start again on the same home and port."""
        self.stop()
        return self.start()

    def __enter__(self) -> FakePaseoDaemon:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- clients ------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """Target for --host/PASEO_HOST: `127.0.0.1:PORT`, or the tcp:// form with a password.

        `unix://PATH` for a daemon listening on a unix socket.
        """
        if self.unix_path is not None:
            return f"unix://{self.unix_path}"
        if self.port is None:
            raise RuntimeError("daemon not started")
        if self.password is not None:
            return f"tcp://127.0.0.1:{self.port}?password={quote(self.password, safe='')}"
        return f"127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """The daemon's WebSocket URL, `ws://127.0.0.1:PORT/ws` (TCP listeners only)."""
        if self.port is None:
            raise RuntimeError("daemon not started, or listening on a unix socket (unix_path)")
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def ws_subprotocols(self) -> list[str]:
        """What a WebSocket client must offer: `paseo.bearer.<password>` when one is set."""
        return [f"paseo.bearer.{self.password}"] if self.password is not None else []

    def env(self, **overrides: str) -> dict[str, str]:
        """A client environment: os.environ plus PASEO_HOST, and PASEO_HOME where the release
        takes both (from 0.9 the two together are TARGET_AMBIGUOUS), and overrides."""
        env = dict(os.environ)
        env.pop("PASEO_LISTEN", None)
        env.update(PASEO_HOME=str(self.home), PASEO_HOST=self.host)
        env.update(overrides)
        if release(env).exclusive_target and "PASEO_HOME" not in overrides:
            env.pop("PASEO_HOME")
        return env

    def cli(
        self, *args: str, timeout: float = 60, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run one fake CLI command against this daemon and capture its output."""
        env = kwargs.pop("env", None) or self.env()
        return subprocess.run(
            [str(FAKE_PASEO_BIN), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,
        )


class Hold:
    """A mock turn that runs until the test releases it (the fake's `keep streaming until PATH
    exists`; see `paseo`): for a test that needs a turn still running after work of its own,
    however slow the machine, and for one that then needs it to end completed.

        hold = Hold(tmp_path / "release")
        prompt = hold.prompt("work")   # "work (keep streaming until .../release exists)"
        ...
        hold.release()                 # every turn given that prompt now ends, completed

    Ending it by stop, cancel or interrupt works as for any turn. A real daemon streams such a
    prompt for its model's duration.
    """

    def __init__(self, path: Path) -> None:
        if any(char.isspace() for char in str(path)):
            raise ValueError(f"a hold's file cannot have whitespace in its path: {path}")
        self.path = Path(path).absolute()

    def prompt(self, text: str = "work") -> str:
        """`text` with the phrase that holds the turn until `release()`."""
        return f"{text} (keep streaming until {self.path} exists)"

    def release(self) -> None:
        """Let every turn held by this file end (at once, as a finished stream ends)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()


def running_fake_processes(
    include_daemons: bool = False, home: Path | None = None, home_under: Path | None = None
) -> list[tuple[int, list[str]]]:
    """Live processes of the fake CLI as (pid, argv), found through /proc cmdlines.

    Daemon workers (`paseo __fake-daemon-worker`) are left out unless `include_daemons`, so a
    leak check after a test sees only CLI children (attach, logs -f, send...) still running.
    With `home`, only processes whose environment has that PASEO_HOME are listed (other
    suites may run fake CLIs at the same time); with `home_under`, those whose PASEO_HOME lies
    below that folder (a whole test run's temporary directory).
    """
    target = os.path.realpath(FAKE_PASEO_BIN)
    found: list[tuple[int, list[str]]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        argv = [part.decode(errors="replace") for part in raw.split(b"\0") if part]
        cwd = _proc_cwd(entry)
        index = next((i for i, a in enumerate(argv[:3]) if _same_file(a, cwd, target)), None)
        if index is None or not pid_alive(int(entry.name)):
            continue
        if argv[index + 1 : index + 2] == [WORKER_ARG] and not include_daemons:
            continue
        if home is not None and _proc_home(entry) != str(Path(home).absolute()):
            continue
        if home_under is not None and not _is_below(_proc_home(entry), home_under):
            continue
        found.append((int(entry.name), argv))
    return found


def _is_below(path: str | None, folder: Path) -> bool:
    return path is not None and Path(path).is_relative_to(Path(folder).absolute())


def _proc_home(entry: Path) -> str | None:
    """PASEO_HOME in a process's environment, else the home of the daemon its PASEO_HOST
    names (a child the gateway started is handed only the host)."""
    try:
        environ = (entry / "environ").read_bytes().split(b"\0")
    except OSError:
        return None
    found = dict(item.decode(errors="replace").partition("=")[::2] for item in environ if item)
    if "PASEO_HOME" in found:
        return found["PASEO_HOME"]
    home = _HOMES_BY_HOST.get(found.get("PASEO_HOST", ""))
    return str(home) if home is not None else None


def _proc_cwd(entry: Path) -> str:
    """Working directory of a process (to resolve a relative script path)."""
    try:
        return os.readlink(entry / "cwd")
    except OSError:
        return "/"


def _same_file(arg: str, cwd: str, target: str) -> bool:
    """Does this argv entry name the fake CLI script?"""
    return arg.endswith("paseo") and os.path.realpath(os.path.join(cwd, arg)) == target


def argv_log(path: Path) -> list[dict[str, Any]]:
    """The FAKE_PASEO_ARGV_LOG entries, one per CLI invocation (none if nothing ran yet)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def cli_calls(path: Path, command: str) -> int:
    """How many logged invocations ran `paseo <command>`."""
    return sum(1 for entry in argv_log(path) if entry["argv"][:1] == [command])
