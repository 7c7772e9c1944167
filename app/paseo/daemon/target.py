"""Where the daemon's WebSocket is, from the same `PASEO_HOST` forms the CLI accepts.

`host:port` and `tcp://host:port[?ssl=true][&password=PW]` are TCP; `unix:///abs/path.sock` is
a unix socket (no password possible there). Without a host, the CLI's defaults: `PASEO_LISTEN`,
then `daemon.listen` in `$PASEO_HOME/config.json`, then `localhost:6767`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_LISTEN = "localhost:6767"
WS_PATH = "/ws"


class BadDaemonHost(ValueError):
    """The host is in none of the forms the daemon listens on."""


@dataclass(frozen=True)
class DaemonTarget:
    """One daemon endpoint: a URL to open (TCP) or a unix socket path, and its password."""

    url: str
    unix_path: str | None = None
    password: str | None = None

    def describe(self) -> str:
        """For logs and errors: never the password."""
        return f"unix://{self.unix_path}" if self.unix_path else self.url


def parse_host(host: str) -> DaemonTarget:
    """A `PASEO_HOST` value as a target; raises `BadDaemonHost` saying what is accepted."""
    host = host.strip()
    if host.startswith("unix://"):
        path = host.removeprefix("unix://")
        if not path.startswith("/"):
            raise BadDaemonHost("a unix daemon host needs an absolute path: unix:///path.sock")
        return DaemonTarget(url=f"ws://localhost{WS_PATH}", unix_path=path)
    if host.startswith("tcp://"):
        return _tcp_target(host)
    if "://" in host or ":" not in host:
        raise BadDaemonHost(
            f"cannot reach a daemon at {host!r}: use host:port, tcp://host:port or "
            "unix:///path.sock"
        )
    return _tcp_target(f"tcp://{host}")


def _tcp_target(host: str) -> DaemonTarget:
    parts = urlsplit(host)
    if parts.username or parts.password:
        raise BadDaemonHost("a daemon host may not carry user:pass@; use ?password=")
    try:
        port = parts.port
    except ValueError as exc:
        raise BadDaemonHost(f"bad port in daemon host: {exc}") from None
    if not parts.hostname or port is None:
        raise BadDaemonHost("a tcp daemon host needs a host and a port: tcp://host:port")
    query = parse_qs(parts.query)
    scheme = "wss" if query.get("ssl", ["false"])[0] == "true" else "ws"
    hostname = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    password = unquote(query["password"][0]) if "password" in query else None
    return DaemonTarget(url=f"{scheme}://{hostname}:{port}{WS_PATH}", password=password)


def resolve_target(host: str | None, home: Path | None, env: dict[str, str]) -> DaemonTarget:
    """The explicit host if given, else where the CLI would look first."""
    if host:
        return parse_host(host)
    listen = env.get("PASEO_LISTEN") or _configured_listen(home)
    if not listen:
        return parse_host(DEFAULT_LISTEN)
    if listen.startswith("/"):
        return parse_host(f"unix://{listen}")
    if listen.isdigit():
        return parse_host(f"127.0.0.1:{listen}")
    return parse_host(listen)


def _configured_listen(home: Path | None) -> str | None:
    """`daemon.listen` from `$PASEO_HOME/config.json` (default home `~/.paseo`), if any."""
    folder = home or Path(os.environ.get("PASEO_HOME") or "~/.paseo").expanduser()
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    daemon = config.get("daemon") if isinstance(config, dict) else None
    listen = daemon.get("listen") if isinstance(daemon, dict) else None
    return listen if isinstance(listen, str) and listen else None
