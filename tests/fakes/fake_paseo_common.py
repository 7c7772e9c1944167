"""Helpers shared by the fake paseo CLI and its fake daemon.

Stdlib only and cheap to import: every CLI invocation loads this module, and the real CLI's
behaviour we copy (home resolution, config defaults, host normalisation) lives in both
processes. Source of truth: the Paseo CLI contract and tests/fixtures/paseo-samples.
"""

from __future__ import annotations

import contextlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

VERSION = "0.1.65-beta.5"
DEFAULT_LISTEN = "127.0.0.1:6767"
DEFAULT_HOST = "localhost:6767"
PID_FILENAME = "paseo.pid"
# What prompts carried besides their text (images, attachments): one JSON line each.
RECEIVED_MEDIA = "received-media.jsonl"
LOG_FILENAME = "daemon.log"
CONFIG_FILENAME = "config.json"
CONNECT_DETAILS = "Start the daemon with: paseo daemon start"

# Provider manifest: (id, label, default mode, [(mode id, mode label)]), in `provider ls` order.
COPILOT_MODE = "https://agentclientprotocol.com/protocol/session-modes#"
PROVIDERS: list[tuple[str, str, str | None, list[tuple[str, str]]]] = [
    (
        "claude",
        "Claude",
        "default",
        [
            ("default", "Always Ask"),
            ("acceptEdits", "Accept File Edits"),
            ("plan", "Plan Mode"),
            ("bypassPermissions", "Bypass"),
        ],
    ),
    ("codex", "Codex", "auto", [("auto", "Default Permissions"), ("full-access", "Full Access")]),
    (
        "copilot",
        "Copilot",
        COPILOT_MODE + "agent",
        [
            (COPILOT_MODE + "agent", "Agent"),
            (COPILOT_MODE + "plan", "Plan"),
            (COPILOT_MODE + "autopilot", "Autopilot"),
        ],
    ),
    (
        "opencode",
        "OpenCode",
        "build",
        [("build", "Build"), ("full-access", "Full Access"), ("plan", "Plan")],
    ),
    ("pi", "Pi", None, []),
    ("mock", "Mock Load Test", "load-test", [("load-test", "Load Test")]),
]
PROVIDER_INFO = {p[0]: p for p in PROVIDERS}

# What JavaScript's String.prototype.trim() removes: WhiteSpace (TAB, VT, FF, SP, NBSP, ZWNBSP
# and the Zs category) and LineTerminator (LF, CR, LS, PS). Python's str.strip() differs: it
# also strips \x1c-\x1f and \x85, and keeps U+FEFF.
JS_TRIM_CHARS = (
    "\t\n\v\f\r \u00a0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def js_trim(text: str) -> str:
    """String.prototype.trim(): how the daemon records a first prompt (create's initialPrompt)
    and how `logs` prints every block."""
    return text.strip(JS_TRIM_CHARS)


def iso_now() -> str:
    """Timestamps as JavaScript's Date.toISOString() prints them (milliseconds, `Z`)."""
    return iso_from_epoch(datetime.now(UTC).timestamp())


def iso_from_epoch(seconds: float) -> str:
    """Epoch seconds to the JS ISO form."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(value: str) -> float:
    """JS ISO string back to epoch seconds."""
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def resolve_home(env: dict[str, str] | os._Environ[str] | None = None) -> Path:
    """PASEO_HOME, default ~/.paseo, created if missing (the real CLI and daemon both do this)."""
    env = os.environ if env is None else env
    raw = env.get("PASEO_HOME") or "~/.paseo"
    home = Path(os.path.expanduser(raw)).absolute()
    home.mkdir(parents=True, exist_ok=True)
    return home


def write_json_atomic(path: Path, data: Any) -> None:
    """Write a JSON file so concurrent readers never see half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def default_config() -> dict[str, Any]:
    """What the first load writes: listen on 127.0.0.1:6767, relay enabled."""
    return {"version": 1, "daemon": {"listen": DEFAULT_LISTEN, "relay": {"enabled": True}}}


def load_config(home: Path) -> dict[str, Any]:
    """Read $PASEO_HOME/config.json, writing the default one on first load."""
    path = home / CONFIG_FILENAME
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
        return loaded if isinstance(loaded, dict) else {}
    except FileNotFoundError:
        config = default_config()
        with contextlib.suppress(OSError):
            write_json_atomic(path, config)
        return config
    except (OSError, ValueError):
        return {}


def config_listen(config: dict[str, Any], env: dict[str, str] | os._Environ[str]) -> str:
    """Effective listen value: PASEO_LISTEN > config.json daemon.listen > 127.0.0.1:$PORT|6767."""
    if env.get("PASEO_LISTEN"):
        return str(env["PASEO_LISTEN"])
    daemon = config.get("daemon")
    if isinstance(daemon, dict) and isinstance(daemon.get("listen"), str) and daemon["listen"]:
        return str(daemon["listen"])
    return f"127.0.0.1:{env.get('PORT') or 6767}"


def normalize_daemon_host(raw: str) -> str | None:
    """Normalise a *configured* listen value (not an explicit --host), as client.ts does."""
    text = raw.strip()
    if not text:
        return None
    if text.startswith(("tcp://", "unix://", "pipe://")):
        return text
    if text.startswith(("/", "~")):
        return "unix://" + text
    if text.isdigit():
        return "127.0.0.1:" + text
    return text if ":" in text else None


def read_pid_file(home: Path) -> dict[str, Any] | None:
    """The daemon's pid file, or None when missing or unreadable."""
    try:
        data = json.loads((home / PID_FILENAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("pid"), int) or data["pid"] <= 0:
        return None
    return data


def pid_alive(pid: int) -> bool:
    """Signal-0 probe that also treats zombies as dead (PID 1 here may not reap them)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    state = stat.rsplit(")", 1)[-1].split()
    return not (state and state[0] in ("Z", "X"))


def parse_listen(listen: str) -> tuple[str, str | tuple[str, int]]:
    """A daemon listen value to ("unix", path) or ("tcp", (host, port)); raises ValueError."""
    text = listen.strip()
    if text.startswith("unix://"):
        return "unix", os.path.expanduser(text[len("unix://") :])
    if text.startswith(("/", "~")):
        return "unix", os.path.expanduser(text)
    if text.isdigit():
        return "tcp", ("127.0.0.1", int(text))
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"Invalid listen address: {listen}")
    return "tcp", (host.strip("[]") or "127.0.0.1", int(port))
