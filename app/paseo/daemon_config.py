"""Which Paseo daemons a gateway serves, from `PASEO_GATEWAY_DAEMONS` or the file it names.

The list form is `name=address,name=address` (addresses as `PASEO_HOST` takes them); the
file form (JSON or TOML) may also give each daemon its own `home` and `workspace_roots`,
since folders are the daemon machine's. An address may carry a password
(`tcp://h:p?password=...`): it reaches the CLI through its environment, never its argv.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.paseo.daemon.target import BadDaemonHost, parse_host
from app.paseo.errors import redact

# The name a single-daemon gateway gives its one daemon (and every session made before
# several were possible).
DEFAULT_DAEMON = "default"
DAEMON_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
_FILE_KEYS = {"name", "host", "home", "workspace_roots"}


class BadDaemonConfig(ValueError):
    """The daemon list cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class DaemonSpec:
    """One daemon as configured: its name, where it listens, and where its agents may work."""

    name: str
    host: str | None
    home: Path | None = None
    workspace_roots: tuple[str, ...] = ()

    def __repr__(self) -> str:  # the host may hold a password
        return f"DaemonSpec(name={self.name!r}, home={self.home!r})"


def parse_daemon_list(text: str) -> list[DaemonSpec]:
    """`name=address,name=address` as daemons (no roots or home of their own)."""
    specs = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, host = item.partition("=")
        if not sep or not host.strip() or any(mark in name for mark in ":/?"):
            raise BadDaemonConfig(
                f"PASEO_GATEWAY_DAEMONS entry {redact(item)!r} must look like name=host:port"
            )
        specs.append(DaemonSpec(name=name.strip(), host=host.strip()))
    return checked(specs)


def load_daemon_file(path: Path) -> list[DaemonSpec]:
    """Daemons from a JSON or TOML file: `{"daemons": [{"name", "host", "home"?,
    "workspace_roots"?}]}` (a bare JSON list also works)."""
    try:
        raw = path.read_text()
    except OSError as exc:
        raise BadDaemonConfig(f"cannot read the daemons file {path}: {exc.strerror}") from None
    try:
        document: Any = tomllib.loads(raw) if path.suffix == ".toml" else json.loads(raw)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise BadDaemonConfig(f"the daemons file {path} is not valid: {exc}") from None
    entries = document.get("daemons") if isinstance(document, dict) else document
    if not isinstance(entries, list):
        raise BadDaemonConfig(f"the daemons file {path} needs a list under `daemons`")
    return checked([_file_entry(entry, path) for entry in entries])


def _file_entry(entry: object, path: Path) -> DaemonSpec:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise BadDaemonConfig(f"each daemon in {path} needs a `name` (and a `host`)")
    if unknown := set(entry) - _FILE_KEYS:
        raise BadDaemonConfig(
            f"daemon {entry['name']!r} in {path} has unknown keys {sorted(unknown)}; "
            f"allowed: {sorted(_FILE_KEYS)}"
        )
    host, home, roots = entry.get("host"), entry.get("home"), entry.get("workspace_roots", [])
    if not isinstance(host, str) or not host.strip():
        raise BadDaemonConfig(f"daemon {entry['name']!r} in {path} needs a `host` (host:port)")
    if home is not None and not isinstance(home, str):
        raise BadDaemonConfig(f"daemon {entry['name']!r} in {path}: `home` must be a path")
    if not isinstance(roots, list) or not all(isinstance(root, str) for root in roots):
        raise BadDaemonConfig(
            f"daemon {entry['name']!r} in {path}: `workspace_roots` must be a list of paths"
        )
    return DaemonSpec(
        name=entry["name"],
        host=host.strip(),
        home=Path(home) if home else None,
        workspace_roots=tuple(roots),
    )


def checked(specs: Sequence[DaemonSpec]) -> list[DaemonSpec]:
    """At least one daemon, names well formed and distinct, every address reachable in form."""
    if not specs:
        raise BadDaemonConfig("the daemon list is empty; name at least one: name=host:port")
    seen: set[str] = set()
    for spec in specs:
        if not re.fullmatch(DAEMON_NAME_PATTERN, spec.name):
            raise BadDaemonConfig(
                f"daemon name {spec.name!r} must be 1-32 lowercase letters, digits, '_' or '-' "
                "(starting with a letter or digit)"
            )
        if spec.name in seen:
            raise BadDaemonConfig(f"daemon name {spec.name!r} is given twice")
        seen.add(spec.name)
        if spec.host is not None:
            try:
                parse_host(spec.host)
            except BadDaemonHost as exc:
                raise BadDaemonConfig(f"daemon {spec.name!r}: {exc}") from None
    return list(specs)
