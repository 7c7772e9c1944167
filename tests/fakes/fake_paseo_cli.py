"""Argument parsing, output rendering and daemon client of the fake `paseo` CLI.

The parser reproduces commander 12's algorithm (root options anywhere, unknown options handed
to subcommands, `--` ends options, `--flag=value`, combined short flags, the exact `error: ...`
texts) because the gateway's argv handling is exactly what the tests must exercise.
Output follows the recordings: 2-space JSON like JSON.stringify, padded tables, JSON errors on
stderr with exit 1.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import os
import re
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qs, urlsplit

from fake_paseo_common import (
    CONNECT_DETAILS,
    DEFAULT_HOST,
    DEFAULT_LISTEN,
    config_listen,
    js_trim,
    load_config,
    normalize_daemon_host,
    parse_iso,
    pid_alive,
    read_pid_file,
    resolve_home,
)
from fake_paseo_versions import release

HOST_HELP = (
    "Daemon host target: host:port or tcp://host:port?ssl=true&password=secret "
    "(default: local socket/pipe, then localhost:6767)"
)
CONNECT_TIMEOUT_S = 15.0
IMPORT_PROVIDERS = ("claude", "codex", "opencode", "acp")
# A dropped daemon connection (kill -9, crash, stop): the WebSocket closes without a close
# frame, so the real client reports describeTransportClose({code: 1006}).
CONNECTION_LOST = "Transport closed (code 1006)"
WAIT_PREVIEW_ITEMS = 5
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}


class CliExit(Exception):
    """Stop now: optional stdout/stderr text and an exit code."""

    def __init__(self, code: int, stdout: str = "", stderr: str = "") -> None:
        super().__init__(code)
        self.code, self.stdout, self.stderr = code, stdout, stderr


class CommandError(Exception):
    """A structured failure (`{"error": {code, message, details?}}`)."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details


class DaemonError(Exception):
    """The daemon answered a request with an error string."""


class ConnectFailed(Exception):
    """Could not reach the daemon; the message is the Node-style reason."""


class ConnectionLost(Exception):
    """The daemon went away in the middle of a request."""


class ProtocolMismatch(ConnectionLost):
    """The peer is not a (fake) paseo daemon."""


class Detach(Exception):
    """SIGINT/SIGTERM in attach or logs -f."""


# =============================================================================================
# Commander-like parsing


@dataclass
class Option:
    """One commander option, built from a flags string like "-d, --detach" or "--title <t>"."""

    flags: str
    description: str = ""
    repeat: bool = False
    hidden: bool = False
    mandatory: bool = False
    default: Any = None
    short: str | None = None
    long: str | None = None
    takes_value: bool = False
    optional_value: bool = False
    negate: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        for part in re.split(r"[ ,|]+", self.flags):
            if part.startswith("--"):
                self.long = part
            elif part.startswith("-"):
                self.short = part
            elif part.startswith("<"):
                self.takes_value = True
            elif part.startswith("["):
                self.takes_value = self.optional_value = True
        assert self.long is not None
        bare = self.long[2:]
        self.negate = bare.startswith("no-")
        if self.negate:
            bare = bare[3:]
        head, *rest = bare.split("-")
        self.name = head + "".join(p[:1].upper() + p[1:] for p in rest)

    def matches(self, arg: str) -> bool:
        """commander Option.is()."""
        return arg in (self.short, self.long)


@dataclass
class Command:
    """A commander command: options, arguments, subcommands and an action."""

    name: str
    description: str = ""
    args: list[tuple[str, bool, str]] = field(default_factory=list)
    options: list[Option] = field(default_factory=list)
    subcommands: list[Command] = field(default_factory=list)
    action: Callable[[Invocation], int] | None = None
    aliases: list[str] = field(default_factory=list)
    parent: Command | None = None

    def add(self, *commands: Command) -> Command:
        """Attach subcommands."""
        for command in commands:
            command.parent = self
            self.subcommands.append(command)
        return self

    def find(self, name: str) -> Command | None:
        """Subcommand by name or alias."""
        return next((c for c in self.subcommands if name == c.name or name in c.aliases), None)

    def find_option(self, arg: str) -> Option | None:
        """commander _findOption."""
        return next((o for o in self.options if o.matches(arg)), None)

    def path(self) -> str:
        """`paseo agent ls` style name for usage lines."""
        names = []
        node: Command | None = self
        while node is not None:
            names.append(node.name)
            node = node.parent
        return " ".join(reversed(names))


@dataclass
class Invocation:
    """A parsed command line ready to run."""

    command: Command
    args: list[str]
    opts: dict[str, Any]

    def get(self, name: str, default: Any = None) -> Any:
        """Option value (local over global, like optsWithGlobals)."""
        return self.opts.get(name, default)


def fail(message: str) -> NoReturn:
    """commander's `this.error()`: plain text on stderr, exit 1, whatever the format."""
    raise CliExit(1, stderr=message + "\n")


def edit_distance(a: str, b: str) -> int:
    """commander's Damerau-Levenshtein (optimal string alignment)."""
    if abs(len(a) - len(b)) > 3:
        return max(len(a), len(b))
    d = [[i] + [0] * len(b) for i in range(len(a) + 1)]
    d[0] = list(range(len(b) + 1))
    for j in range(1, len(b) + 1):
        for i in range(1, len(a) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def suggest_similar(word: str, candidates: list[str]) -> str:
    """commander's `(Did you mean ...?)` suffix."""
    options = word.startswith("--")
    if options:
        word = word[2:]
        candidates = [c[2:] for c in candidates]
    similar: list[str] = []
    best = 3
    for candidate in dict.fromkeys(candidates):
        if len(candidate) <= 1:
            continue
        distance = edit_distance(word, candidate)
        length = max(len(word), len(candidate))
        if (length - distance) / length > 0.4:
            if distance < best:
                best, similar = distance, [candidate]
            elif distance == best:
                similar.append(candidate)
    similar.sort()
    if options:
        similar = ["--" + s for s in similar]
    if len(similar) > 1:
        return f"\n(Did you mean one of {', '.join(similar)}?)"
    return f"\n(Did you mean {similar[0]}?)" if similar else ""


def is_option(arg: str) -> bool:
    """commander maybeOption."""
    return len(arg) > 1 and arg[0] == "-"


def store(values: dict[str, Any], option: Option, value: Any) -> None:
    """Assign an option value (repeatable ones collect)."""
    if option.repeat:
        values.setdefault(option.name, []).append(value)
    elif option.negate:
        values[option.name] = False
    else:
        values[option.name] = True if value is None and not option.takes_value else value


def parse_options(
    cmd: Command, argv: list[str], values: dict[str, Any]
) -> tuple[list[str], list[str]]:
    """commander Command.parseOptions: returns (operands, unknown)."""
    operands: list[str] = []
    unknown: list[str] = []
    dest = operands
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--":
            if dest is unknown:
                dest.append(arg)
            dest.extend(args)
            break
        if is_option(arg) and (option := cmd.find_option(arg)):
            consume_option(cmd, option, args, values)
            continue
        if (
            len(arg) > 2
            and arg[0] == "-"
            and arg[1] != "-"
            and (option := cmd.find_option("-" + arg[1]))
        ):
            if option.takes_value:
                store(values, option, arg[2:])
            else:
                consume_option(cmd, option, [], values)
                args.insert(0, "-" + arg[2:])
            continue
        if re.match(r"^--[^=]+=", arg):
            flag, _, value = arg.partition("=")
            option = cmd.find_option(flag)
            if option and option.takes_value:
                store(values, option, value)
                continue
        if is_option(arg):
            dest = unknown
        dest.append(arg)
    return operands, unknown


def consume_option(cmd: Command, option: Option, args: list[str], values: dict[str, Any]) -> None:
    """Take an option's value from the following argument when it has one."""
    if option.name == "version" and cmd.parent is None:
        raise CliExit(0, stdout=release().version + "\n")
    if option.takes_value and not option.optional_value:
        if not args:
            fail(f"error: option '{option.flags}' argument missing")
        store(values, option, args.pop(0))
    elif option.optional_value:
        store(values, option, args.pop(0) if args and not is_option(args[0]) else None)
    else:
        store(values, option, None)


def visible_long_flags(cmd: Command) -> list[str]:
    """Candidates for unknown-option suggestions: this command's and its ancestors' options."""
    flags: list[str] = []
    node: Command | None = cmd
    while node is not None:
        flags += [o.long for o in node.options if not o.hidden and o.long]
        flags.append("--help")
        node = node.parent
    return flags


def parse_command(
    cmd: Command, operands: list[str], unknown: list[str], chain: list[dict[str, Any]]
) -> Invocation:
    """commander Command._parseCommand (dispatch, help, mandatory/unknown checks, arguments)."""
    values: dict[str, Any] = {o.name: o.default for o in cmd.options if o.default is not None}
    chain = [*chain, values]
    more_operands, unknown = parse_options(cmd, unknown, values)
    operands = operands + more_operands
    if operands and (sub := cmd.find(operands[0])):
        return parse_command(sub, operands[1:], unknown, chain)
    if operands and cmd.subcommands and operands[0] == "help":
        target = cmd.find(operands[1]) if len(operands) > 1 else None
        raise CliExit(0, stdout=format_help(target or cmd))
    if cmd.subcommands and not operands and not unknown and cmd.action is None:
        raise CliExit(1, stderr=format_help(cmd))
    if any(arg in ("-h", "--help") for arg in unknown):
        raise CliExit(0, stdout=format_help(cmd))
    for option in cmd.options:
        if option.mandatory and option.name not in values:
            fail(f"error: required option '{option.flags}' not specified")
    if cmd.action is None and operands and cmd.subcommands:
        fail(
            f"error: unknown command '{operands[0]}'"
            + suggest_similar(operands[0], command_names(cmd))
        )
    if unknown:
        suggestion = (
            suggest_similar(unknown[0], visible_long_flags(cmd))
            if unknown[0].startswith("--")
            else ""
        )
        fail(f"error: unknown option '{unknown[0]}'{suggestion}")
    if cmd.action is None:
        raise CliExit(1, stderr=format_help(cmd))
    for index, (name, required, _desc) in enumerate(cmd.args):
        if required and index >= len(operands):
            fail(f"error: missing required argument '{name}'")
    merged: dict[str, Any] = {}
    for layer in chain:
        merged.update(layer)
    return Invocation(cmd, operands, merged)


def command_names(cmd: Command) -> list[str]:
    """Subcommand names and aliases (plus the implicit `help`)."""
    names = [n for c in cmd.subcommands for n in (c.name, *c.aliases)]
    return [*names, "help"]


def wrap(text: str, width: int, indent: int) -> str:
    """commander Help.wrap (columns 80)."""
    column = width - indent
    if column < 40 or re.search(r"\n[ \f\t\v\u00a0]+", text):
        return text
    lead, body = text[:indent], text[indent:]
    pattern = rf"\n|.{{1,{column - 1}}}([\s\u200b]|\Z)|[^\s\u200b]+?([\s\u200b]|\Z)"
    lines = [m.group(0) for m in re.finditer(pattern, body) if m.group(0)]
    out = [
        ("" if line == "\n" else (" " * indent if i else "") + line.rstrip())
        for i, line in enumerate(lines)
    ]
    return lead + "\n".join(out)


def subcommand_term(cmd: Command) -> str:
    """commander Help.subcommandTerm: name|alias [options] <args>."""
    term = cmd.name + ("|" + cmd.aliases[0] if cmd.aliases else "")
    term += " [options]" if cmd.options else ""
    return term + "".join(f" <{n}>" if req else f" [{n}]" for n, req, _ in cmd.args)


def format_help(cmd: Command) -> str:
    """commander Help.formatHelp."""
    usage = "[options]" + (" [command]" if cmd.subcommands else "")
    usage += "".join(f" <{n}>" if req else f" [{n}]" for n, req, _ in cmd.args)
    opts = [(o.flags, o.description) for o in cmd.options if not o.hidden]
    opts.append(("-h, --help", "display help for command"))
    arg_items = [(n, d) for n, _r, d in cmd.args if d]
    cmd_items = [(subcommand_term(c), c.description) for c in cmd.subcommands]
    if cmd.subcommands:
        cmd_items.append(("help [command]", "display help for command"))
    term_width = max(len(t) for t, _ in [*opts, *arg_items, *cmd_items])

    def items(pairs: list[tuple[str, str]]) -> str:
        rows = [wrap(t.ljust(term_width + 2) + d, 78, term_width + 2) if d else t for t, d in pairs]
        return "\n".join("  " + line if line else line for row in rows for line in row.split("\n"))

    parts = [f"Usage: {cmd.path()} {usage}", ""]
    if cmd.description:
        parts += [cmd.description, ""]
    if arg_items:
        parts += ["Arguments:", items(arg_items), ""]
    parts += ["Options:", items(opts), ""]
    if cmd_items:
        parts += ["Commands:", items(cmd_items), ""]
    return "\n".join(parts)


# =============================================================================================
# Output


@dataclass
class Column:
    """A table column: header, field name or getter, minimum width."""

    header: str
    field: str | Callable[[Any], Any]
    width: int = 0

    def value(self, item: Any) -> str:
        """Cell text (JS String(value ?? ''))."""
        raw = self.field(item) if callable(self.field) else item.get(self.field)
        return js_string(raw)


@dataclass
class Result:
    """What a command returns: data plus how to render it."""

    data: Any
    columns: list[Column]
    id_field: str | Callable[[Any], str]
    is_list: bool = False
    serialized: Any = None
    quiet_empty_line: bool = False
    human: Callable[[Any], str] | None = None  # table format: this instead of a table


def js_string(value: Any) -> str:
    """JavaScript String() for table cells."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(js_string(v) for v in value)
    return str(value)


def js_len(text: str) -> int:
    """String length in UTF-16 code units, as JS measures it."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def to_json(value: Any) -> str:
    """JSON.stringify(value, null, 2) plus the CLI's C1-control escaping."""
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return re.sub(r"[\u007f-\u009f]", lambda m: f"\\u{ord(m.group(0)):04x}", text)


def yaml_scalar(value: Any) -> str:
    """A YAML scalar, quoted when plain style would be ambiguous."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    text = str(value)
    plain = re.fullmatch(r"[\w./~@()+-][^\x00-\x1f\x7f:#]*", text) and not re.fullmatch(
        r"(?i)true|false|null|yes|no|on|off|~|[-+]?[0-9.]+(e[-+]?\d+)?", text
    )
    return text if plain and text == text.strip() else json.dumps(text, ensure_ascii=False)


def to_yaml(value: Any, indent: int = 0) -> str:
    """A small YAML emitter (block style) for `-o yaml`."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return pad + "{}\n"
        out = ""
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                out += f"{pad}{key}:\n" + to_yaml(item, indent + 2)
            else:
                out += f"{pad}{key}: " + to_yaml(item, 0).lstrip()
        return out
    if isinstance(value, list):
        if not value:
            return pad + "[]\n"
        out = ""
        for item in value:
            body = to_yaml(item, indent + 2)
            out += f"{pad}- " + body[indent + 2 :]
        return out
    return pad + yaml_scalar(value) + "\n"


def render_table(result: Result, headers: bool) -> str:
    """table.ts: widths from header, values and width hints; two-space separators."""
    rows = result.data if result.is_list else [result.data]
    if not rows:
        return ""
    widths = []
    for col in result.columns:
        width = len(col.header) if headers else 0
        for row in rows:
            width = max(width, js_len(col.value(row)))
        widths.append(max(width, col.width))

    def line(cells: list[str]) -> str:
        return "  ".join(
            c + " " * max(0, w - js_len(c)) for c, w in zip(cells, widths, strict=True)
        )

    lines = [line([c.header for c in result.columns])] if headers else []
    lines += [line([c.value(row) for c in result.columns]) for row in rows]
    return "\n".join(lines)


def render_quiet(result: Result) -> str:
    """-q: ids only."""
    rows = result.data if result.is_list else [result.data]
    ident = result.id_field
    ids = [ident(r) if callable(ident) else js_string(r.get(ident)) for r in rows]
    return "\n".join(ids)


@dataclass
class OutputOptions:
    """Root output flags after parsing."""

    format: str = "table"
    quiet: bool = False
    headers: bool = True

    @classmethod
    def from_invocation(cls, inv: Invocation) -> OutputOptions:
        """--json wins over -o; `cli` is an alias of table."""
        fmt = "json" if inv.get("json") else str(inv.get("format") or "table")
        return cls(
            format="table" if fmt == "cli" else fmt,
            quiet=bool(inv.get("quiet")),
            headers=inv.get("headers") is not False,
        )


def crash_unknown_format(fmt: str) -> NoReturn:
    """An invalid --format value crashes with an unhandled rejection stack (recorded)."""
    raise CliExit(
        1,
        stderr=(
            f"Error: Unknown output format: {fmt}\n"
            "    at render (file:///usr/lib/node_modules/@getpaseo/cli/dist/output/render.js:31:19)\n"
            "    at file:///usr/lib/node_modules/@getpaseo/cli/dist/output/with-output.js:38:32\n"
            "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)\n"
        ),
    )


def render(result: Result, out: OutputOptions) -> str | None:
    """Text for stdout without its trailing newline; None prints nothing at all."""
    if out.quiet:
        text = render_quiet(result)
        return text if text or result.quiet_empty_line else None
    payload = result.serialized if result.serialized is not None else result.data
    if out.format == "json":
        return to_json(payload)
    if out.format == "yaml":
        return to_yaml(payload)
    if out.format == "table":
        if result.human is not None:
            return result.human(payload)
        return render_table(result, out.headers) or None
    crash_unknown_format(out.format)


def render_error(error: CommandError, out: OutputOptions) -> str:
    """Errors: JSON/YAML object, or `Error: msg` plus a details line."""
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.details is not None:
        body["details"] = error.details
    if out.format == "json":
        return to_json({"error": body})
    if out.format == "yaml":
        return to_yaml({"error": body})
    if out.format != "table":
        crash_unknown_format(out.format)
    text = f"Error: {error.message}"
    if isinstance(error.details, str):
        text += "\n" + error.details
    return text


def write(stream: Any, text: str) -> None:
    """Write and flush, ignoring a closed pipe like Node does."""
    try:
        stream.write(text)
        stream.flush()
    except (BrokenPipeError, ValueError):
        pass


# =============================================================================================
# Daemon client


def host_candidates(explicit: str | None) -> list[str]:
    """--host > PASEO_HOST > unix listen (PASEO_LISTEN/pid/config) > TCP listen > localhost:6767."""
    chosen = explicit if explicit is not None else os.environ.get("PASEO_HOST")
    if chosen:
        return [chosen]
    home = resolve_home()
    config = load_config(home)
    candidates: list[str] = []
    pid_info = read_pid_file(home) or {}
    daemon = config.get("daemon") if isinstance(config.get("daemon"), dict) else {}
    for raw in (
        os.environ.get("PASEO_LISTEN", ""),
        str(pid_info.get("listen") or ""),
        str(daemon.get("listen") or ""),
    ):
        host = normalize_daemon_host(raw)
        if host and host.startswith("unix://"):
            candidates.append(host)
            break
    tcp = normalize_daemon_host(config_listen(config, os.environ))
    if tcp and not tcp.startswith("unix://") and tcp != DEFAULT_LISTEN:
        candidates.append(tcp)
    candidates.append(DEFAULT_HOST)
    return list(dict.fromkeys(candidates))


def target_hosts(inv: Invocation) -> list[str]:
    """Where a daemon-connected command connects, in the order to try.

    Up to 0.8 it is `host_candidates` (host wins over home; fallbacks to the configured
    address and localhost:6767). Where the release has one exclusive target: `--home`, or
    `--host`, or else the one of PASEO_HOME / PASEO_HOST that is set; two of them are
    TARGET_AMBIGUOUS, and a home means its daemon's published endpoint (pid file), nothing else.
    """
    host, home = inv.get("host"), inv.get("home")
    if not release().exclusive_target:
        return host_candidates(host)
    if host and home:
        raise ambiguous_target("Both --home and --host were given", "Pass only one of them")
    if host:
        return [host]
    if not home and os.environ.get("PASEO_HOST"):
        if os.environ.get("PASEO_HOME"):
            raise ambiguous_target(
                "Both PASEO_HOME and PASEO_HOST are set",
                "Pass --home or --host to choose one, or unset one of PASEO_HOME and PASEO_HOST",
            )
        return [os.environ["PASEO_HOST"]]
    return published_endpoint(selected_home(inv))


def selected_home(inv: Invocation) -> Path:
    """`--home`, else PASEO_HOME, else ~/.paseo."""
    home = inv.get("home")
    return resolve_home({"PASEO_HOME": home} if home else None)


def ambiguous_target(why: str, hint: str) -> CommandError:
    """TARGET_AMBIGUOUS (invented wording: the docs name the code, not its message)."""
    return CommandError("TARGET_AMBIGUOUS", f"{why}: the daemon to use is ambiguous", hint)


def published_endpoint(home: Path) -> list[str]:
    """The listen address a home's live daemon published in its pid file (or none)."""
    info = read_pid_file(home)
    if not info or not pid_alive(int(info["pid"])):
        return []
    host = normalize_daemon_host(str(info.get("listen") or ""))
    return [host] if host else []


def client_id() -> str:
    """All CLI runs share one id stored in $PASEO_HOME/cli-client-id."""
    path = resolve_home() / "cli-client-id"
    try:
        return path.read_text().strip()
    except OSError:
        value = "cid_" + secrets.token_hex(8)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, value.encode())
            os.close(fd)
        except OSError:
            pass
        return value


def errno_name(exc: OSError) -> str:
    """Node-style error code (ECONNREFUSED, ENOENT, ...)."""
    return errno.errorcode.get(exc.errno or 0, "ECONNRESET")


def parse_target(host: str) -> tuple[str, Any, str | None, bool, str]:
    """(family, address, password, tls, Host header) for a daemon target string."""
    text = host.strip()
    if text.startswith("unix://"):
        path = text[len("unix://") :].strip()
        if not path:
            raise ConnectFailed("Invalid IPC daemon target: missing socket path")
        return "unix", path, None, False, "localhost"
    if text.startswith("pipe://") or text.startswith("\\\\.\\pipe\\"):
        raise ConnectFailed(f"connect ENOENT {text}")
    password = None
    tls = False
    if text.startswith("tcp://"):
        parts = urlsplit(text)
        if parts.username or parts.password:
            raise ConnectFailed("Invalid connection URI: credentials must be passed as ?password=")
        query = parse_qs(parts.query)
        password = query.get("password", [None])[0]
        tls = query.get("ssl", ["false"])[0] == "true"
        if parts.port is None:
            raise ConnectFailed(f"Invalid connection URI: port is required ({text})")
        return (
            "tcp",
            (parts.hostname or "", parts.port),
            password,
            tls,
            f"{parts.hostname}:{parts.port}",
        )
    name, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        name, port = text, "80"
    return "tcp", (name.strip("[]"), int(port)), password, tls, text


def open_socket(family: str, address: Any, tls: bool) -> socket.socket:
    """Connect with Node-like error texts."""
    if family == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(address)
        except OSError as exc:
            sock.close()
            raise ConnectFailed(f"connect {errno_name(exc)} {address}") from exc
        return sock
    name, port = address
    lookup = "127.0.0.1" if name == "localhost" else name
    try:
        infos = socket.getaddrinfo(lookup, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ConnectFailed(f"getaddrinfo ENOTFOUND {name}") from exc
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    af, kind, proto, _canon, sockaddr = infos[0]
    sock = socket.socket(af, kind, proto)
    sock.settimeout(CONNECT_TIMEOUT_S)
    try:
        sock.connect(sockaddr)
    except TimeoutError as exc:
        sock.close()
        raise ConnectFailed(f"connect ETIMEDOUT {sockaddr[0]}:{sockaddr[1]}") from exc
    except OSError as exc:
        sock.close()
        raise ConnectFailed(f"connect {errno_name(exc)} {sockaddr[0]}:{sockaddr[1]}") from exc
    if tls:
        import ssl  # only tcp://...?ssl=true pays for it

        try:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=name)
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            raise ConnectFailed(f"write EPROTO {exc}") from exc
    return sock


class Client:
    """One JSON-lines connection to the fake daemon."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.rid = 0
        self.events: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        """Write one line."""
        try:
            self.sock.sendall(json.dumps(message).encode() + b"\n")
        except OSError as exc:
            raise ConnectionLost(CONNECTION_LOST) from exc

    def read(self) -> dict[str, Any] | None:
        """Next message, or None at EOF."""
        while b"\n" not in self.buffer:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError as exc:
                raise ConnectFailed("Connection timeout") from exc
            except OSError:
                chunk = b""
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            raise ProtocolMismatch(line.decode(errors="replace").strip())
        return message

    def handshake(self, password: str | None, host_header: str) -> None:
        """hello -> server_info; a refusal looks like a failed WebSocket upgrade."""
        self.sock.settimeout(CONNECT_TIMEOUT_S)
        self.send(
            {
                "op": "hello",
                "clientId": client_id(),
                "clientType": "cli",
                "protocolVersion": 1,
                "appVersion": release().version,
                "password": password,
                "hostHeader": host_header,
            }
        )
        try:
            reply = self.read()
        except ProtocolMismatch as exc:
            status = re.match(r"HTTP/\d(?:\.\d)? (\d{3})", str(exc))
            reason = "socket hang up"
            if status:
                reason = f"Unexpected server response: {status.group(1)}"
            raise ConnectFailed(reason) from exc
        except ConnectionLost as exc:
            raise ConnectFailed("socket hang up") from exc
        if reply is None:
            raise ConnectFailed("socket hang up")
        if reply.get("type") == "rejected":
            raise ConnectFailed(f"Unexpected server response: {reply.get('status')}")
        self.sock.settimeout(None)

    def request(self, op: str, **payload: Any) -> Any:
        """Send a request and wait for its reply, queueing pushed events meanwhile."""
        self.rid += 1
        self.send({"rid": self.rid, "op": op, **payload})
        while True:
            message = self.read()
            if message is None:
                raise ConnectionLost(CONNECTION_LOST)
            if message.get("rid") == self.rid:
                if message.get("ok"):
                    return message.get("result")
                raise DaemonError(str(message.get("error")))
            if message.get("type") == "agent_stream":
                self.events.append(message)

    def next_event(self) -> dict[str, Any] | None:
        """Next pushed agent_stream message, or None when the daemon is gone."""
        if self.events:
            return self.events.pop(0)
        while True:
            message = self.read()
            if message is None or message.get("type") == "agent_stream":
                return message

    def close(self) -> None:
        """Drop the connection."""
        with contextlib.suppress(OSError):
            self.sock.close()


def connect(explicit: str | None) -> Client:
    """Connect to `explicit` (or PASEO_HOST, or the 0.1.65 fallbacks)."""
    return connect_to(host_candidates(explicit))


def connect_to(hosts: list[str]) -> Client:
    """Try each candidate host in order, keeping the last error (connectToDaemon)."""
    last: ConnectFailed | None = None
    for host in hosts:
        try:
            family, address, password, tls, header = parse_target(host)
            sock = open_socket(family, address, tls)
        except ConnectFailed as exc:
            last = exc
            continue
        client = Client(sock)
        try:
            client.handshake(password, header)
            return client
        except ConnectFailed as exc:
            client.close()
            last = exc
    raise last or ConnectFailed("Unable to connect to Paseo daemon")


def connect_target(inv: Invocation) -> Client:
    """Connect to the daemon this invocation selects (`target_hosts`)."""
    hosts = target_hosts(inv)
    if not hosts:
        raise ConnectFailed("no daemon is running for this home")
    return connect_to(hosts)


def daemon_host(inv: Invocation) -> str:
    """getDaemonHost: the first candidate (or the home without one), for error messages."""
    hosts = target_hosts(inv)
    return hosts[0] if hosts else str(selected_home(inv))


def connect_or_error(inv: Invocation) -> Client:
    """Connect, or raise DAEMON_NOT_RUNNING with the recorded wording."""
    try:
        return connect_target(inv)
    except ConnectFailed as exc:
        raise CommandError(
            "DAEMON_NOT_RUNNING",
            f"Cannot connect to daemon at {daemon_host(inv)}: {exc}",
            CONNECT_DETAILS,
        ) from exc


# =============================================================================================
# Shared formatting of agents and transcripts


def relative_time(iso: str) -> str:
    """ls `created` text."""
    seconds = int(time.time() - parse_iso(iso))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} minutes ago"
    if seconds < 86400:
        return f"{seconds // 3600} hours ago"
    return f"{seconds // 86400} days ago"


def shorten_path(path: str, naive: bool = False) -> str:
    """$HOME prefix to `~` (ls checks a path boundary, inspect a naive prefix)."""
    home = os.environ.get("HOME")
    if home and (path == home or path.startswith(home + "/") or (naive and path.startswith(home))):
        return "~" + path[len(home) :]
    return path


def model_of(snapshot: dict[str, Any]) -> str | None:
    """runtimeInfo.model ?? model, ignoring blanks and "default"."""
    for value in (snapshot.get("runtimeModel"), snapshot.get("model")):
        if isinstance(value, str) and value.strip() and value.strip().lower() != "default":
            return value.strip()
    return None


def ls_item(s: dict[str, Any]) -> dict[str, str]:
    """ls row: eight string fields."""
    model = model_of(s)
    return {
        "id": s["id"],
        "shortId": s["id"][:7],
        "name": s.get("title") or "-",
        "provider": f"{s['provider']}/{model}" if model else s["provider"],
        "thinking": s.get("thinkingOptionId") or "auto",
        "status": s["status"],
        "cwd": shorten_path(s["cwd"]),
        "created": relative_time(s["createdAt"]),
    }


def usage_of(snapshot: dict[str, Any]) -> dict[str, Any] | None:
    """inspect LastUsage."""
    usage = snapshot.get("lastUsage")
    if not usage:
        return None
    return {
        "InputTokens": usage.get("inputTokens") or 0,
        "OutputTokens": usage.get("outputTokens") or 0,
        "CachedTokens": usage.get("cachedInputTokens") or 0,
        "CostUsd": usage.get("totalCostUsd") or 0,
    }


def inspect_data(s: dict[str, Any]) -> dict[str, Any]:
    """inspect JSON object (PascalCase, no Labels)."""
    caps = s.get("capabilities")
    labels = s.get("labels") or {}
    return {
        "Id": s["id"],
        "Name": s.get("title") or "-",
        "Provider": s["provider"],
        "Model": model_of(s) or "-",
        "Thinking": s.get("thinkingOptionId") or "auto",
        "Status": s["status"],
        "Archived": bool(s.get("archivedAt")),
        "ArchivedAt": s.get("archivedAt"),
        "Mode": s.get("currentModeId") or "default",
        "Cwd": s["cwd"],
        "CreatedAt": s["createdAt"],
        "UpdatedAt": s["updatedAt"],
        "LastUsage": usage_of(s),
        "Capabilities": None
        if caps is None
        else {
            "Streaming": bool(caps.get("supportsStreaming")),
            "Persistence": bool(caps.get("supportsSessionPersistence")),
            "DynamicModes": bool(caps.get("supportsDynamicModes")),
            "McpServers": bool(caps.get("supportsMcpServers")),
        },
        "AvailableModes": [
            {"id": m["id"], "label": m["label"]} for m in s.get("availableModes") or []
        ],
        "PendingPermissions": [
            {"id": p["id"], "tool": p.get("name") or "unknown"}
            for p in s.get("pendingPermissions") or []
        ],
        "Worktree": labels.get("paseo.worktree"),
        "ParentAgentId": labels.get("paseo.parent-agent-id"),
    }


def format_cost(cost: float) -> str:
    """inspect table cost text."""
    if cost == 0:
        return "$0.00"
    return f"${cost:.4f}" if cost < 0.01 else f"${cost:.2f}"


def inspect_rows(d: dict[str, Any]) -> list[dict[str, str]]:
    """inspect table rows (KEY/VALUE)."""
    rows = [
        (k, js_string(d[k]) if d[k] is not None else "null")
        for k in (
            "Id",
            "Name",
            "Provider",
            "Model",
            "Thinking",
            "Status",
            "Archived",
            "ArchivedAt",
            "Mode",
        )
    ]
    rows += [
        ("Cwd", shorten_path(d["Cwd"], naive=True)),
        ("CreatedAt", d["CreatedAt"]),
        ("UpdatedAt", d["UpdatedAt"]),
    ]
    if u := d["LastUsage"]:
        rows.append(
            (
                "LastUsage",
                f"InputTokens: {u['InputTokens']}, OutputTokens: {u['OutputTokens']}, "
                f"CachedTokens: {u['CachedTokens']}, CostUsd: {format_cost(u['CostUsd'])}",
            )
        )
    if c := d["Capabilities"]:
        rows.append(("Capabilities", ", ".join(f"{k}: {js_string(v)}" for k, v in c.items())))
    if d["AvailableModes"]:
        rows.append(
            ("AvailableModes", ", ".join(f"{m['id']} ({m['label']})" for m in d["AvailableModes"]))
        )
    pending = ", ".join(f"{p['id']} ({p['tool']})" for p in d["PendingPermissions"]) or "[]"
    rows += [
        ("PendingPermissions", pending),
        ("Worktree", d["Worktree"] or "null"),
        ("ParentAgentId", d["ParentAgentId"] or "null"),
    ]
    return [{"key": k, "value": v} for k, v in rows]


def tool_display(item: dict[str, Any]) -> tuple[str, str | None]:
    """activity-curator display name and summary of a tool call."""
    detail = item.get("detail") or {}
    kind = detail.get("type")
    names = {"shell": "Shell", "read": "Read", "edit": "Edit", "write": "Write", "search": "Search"}
    summary = {
        "shell": detail.get("command"),
        "read": detail.get("filePath"),
        "edit": detail.get("filePath"),
        "write": detail.get("filePath"),
        "search": detail.get("query"),
    }.get(kind)
    return names.get(kind, item.get("name", "")), summary


def collapse_timeline(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """activity-curator collapseTimeline: merge text runs, dedupe tool calls by callId."""
    result: list[dict[str, Any]] = []
    tools: dict[str, dict[str, Any]] = {}
    buffers = {"assistant_message": "", "reasoning": ""}

    def flush(kind: str) -> None:
        if buffers[kind]:
            result.append({"type": kind, "text": buffers[kind]})
            buffers[kind] = ""

    def flush_tools() -> None:
        result.extend(tools.values())
        tools.clear()

    for item in items:
        kind = item.get("type")
        if kind in buffers:
            flush("reasoning" if kind == "assistant_message" else "assistant_message")
            flush_tools()
            buffers[kind] += item.get("text", "")
        elif kind == "tool_call":
            flush("assistant_message")
            flush("reasoning")
            previous = tools.get(item["callId"], {})
            tools[item["callId"]] = {
                **previous,
                **item,
                "detail": item.get("detail") or previous.get("detail"),
            }
        else:
            flush("assistant_message")
            flush("reasoning")
            flush_tools()
            result.append(item)
    flush("assistant_message")
    flush("reasoning")
    flush_tools()
    return result


def curate(items: list[dict[str, Any]], max_items: int | None = None) -> str:
    """curateAgentActivity: the `logs` transcript format."""
    if not items:
        return "No activity to display."
    collapsed = collapse_timeline(items)
    limit = 40 if max_items is None else max_items
    if limit > 0 and len(collapsed) > limit:
        collapsed = collapsed[-limit:]
    lines: list[str] = []
    buf = {"message": "", "thought": ""}

    def append(key: str, text: str) -> None:
        text = js_trim(text)
        if text:
            buf[key] = f"{buf[key]}\n{text}" if buf[key] else text

    def flush() -> None:
        if js_trim(buf["message"]):
            lines.append(js_trim(buf["message"]))
        if js_trim(buf["thought"]):
            lines.append(f"[Thought] {js_trim(buf['thought'])}")
        buf["message"] = buf["thought"] = ""

    for item in collapsed:
        kind = item.get("type")
        if kind == "assistant_message":
            append("message", item["text"])
        elif kind == "reasoning":
            append("thought", item["text"])
        elif kind in ("user_message", "tool_call", "todo", "error", "compaction"):
            flush()
            lines.extend(curate_line(item))
    flush()
    return "\n".join(lines) if lines else "No activity to display."


def curate_line(item: dict[str, Any]) -> list[str]:
    """Transcript lines of one non-text item."""
    kind = item["type"]
    if kind == "user_message":
        return [f"[User] {js_trim(item['text'])}"]
    if kind == "tool_call":
        name, summary = tool_display(item)
        return [f"[{name}] {summary}" if summary else f"[{name}]"]
    if kind == "todo":
        return ["[Tasks]"] + [
            f"- {'[x]' if e.get('completed') else '[ ]'} {e.get('text', '')}"
            for e in item.get("items", [])
        ]
    if kind == "error":
        return [f"[Error] {item.get('message', '')}"]
    return ["[Compacted]"]


def parse_duration(raw: str) -> float:
    """duration.ts: `90` = seconds, or 30s / 5m / 1h / 2h30m; returns milliseconds."""
    text = raw.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text) * 1000
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if not text or not match:
        raise ValueError(
            f'Invalid duration format: "{raw}". Use formats like 30s, 5m, 1h, or 2h30m'
        )
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return float((hours * 3600 + minutes * 60 + seconds) * 1000)


def timeout_ms(raw: str | None, message: str) -> tuple[int, str | None]:
    """A positive --timeout/--wait-timeout in ms and its `N seconds` label (INVALID_TIMEOUT)."""
    if raw is None or raw == "":
        return 0, None
    try:
        ms = parse_duration(raw)
        if ms <= 0:
            raise ValueError("Timeout must be positive")
    except ValueError as exc:
        raise CommandError("INVALID_TIMEOUT", message, str(exc)) from exc
    seconds = int(ms // 1000)
    return int(ms), f"{seconds} second{'' if seconds == 1 else 's'}"


def parse_labels(flags: list[str] | None, split_commas: bool = False) -> dict[str, str]:
    """--label k=v (repeatable); anything without `=` is INVALID_LABEL."""
    labels: dict[str, str] = {}
    for flag in flags or []:
        for part in flag.split(",") if split_commas else [flag]:
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise CommandError(
                    "INVALID_LABEL",
                    f"Invalid label format: {part}",
                    "Labels must be in key=value format",
                )
            labels[key.strip() if split_commas else key] = value
    return labels


def read_images(paths: list[str] | None) -> list[dict[str, str]] | None:
    """--image files as the daemon gets them, `{data (base64), mimeType}`: the type from the
    extension (png, jpg/jpeg, gif, webp; jpeg otherwise, as send.ts readImageFiles does), an
    unreadable file IMAGE_READ_ERROR."""
    images = []
    for path in paths or []:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise CommandError(
                "IMAGE_READ_ERROR", f"Failed to read image {path}: {exc.strerror}"
            ) from exc
        mime_type = IMAGE_TYPES.get(Path(path).suffix.lower(), "image/jpeg")
        images.append({"data": base64.b64encode(data).decode("ascii"), "mimeType": mime_type})
    return images or None
