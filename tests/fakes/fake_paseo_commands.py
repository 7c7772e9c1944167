"""Commands of the fake `paseo` CLI and its entry point (`main`).

Each command mirrors the real one's validation order, error codes and output shapes as the
contract and the recordings describe them. Test knobs handled here:
FAKE_PASEO_STARTUP_DELAY, FAKE_PASEO_ARGV_LOG, FAKE_PASEO_SEND_WAIT_SECONDS,
FAKE_PASEO_ATTACH_DROP, FAKE_PASEO_HANG_COMMANDS and FAKE_PASEO_HANG_WHILE (see `paseo`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fake_paseo_cli import (
    CONNECTION_LOST,
    HOST_HELP,
    IMPORT_PROVIDERS,
    WAIT_PREVIEW_ITEMS,
    Client,
    CliExit,
    Column,
    Command,
    CommandError,
    ConnectFailed,
    ConnectionLost,
    DaemonError,
    Detach,
    Invocation,
    Option,
    OutputOptions,
    Result,
    connect,
    connect_or_error,
    connect_target,
    curate,
    daemon_host,
    inspect_data,
    inspect_rows,
    ls_item,
    open_socket,
    parse_command,
    parse_labels,
    parse_target,
    read_images,
    render,
    render_error,
    selected_home,
    timeout_ms,
    to_json,
    write,
)
from fake_paseo_common import (
    CONFIG_FILENAME,
    CONNECT_DETAILS,
    LOG_FILENAME,
    PROVIDERS,
    config_listen,
    js_trim,
    load_config,
    normalize_daemon_host,
    pid_alive,
    read_pid_file,
    resolve_home,
    write_json_atomic,
)
from fake_paseo_versions import release

if TYPE_CHECKING:
    import subprocess

SEND_WAIT_DEFAULT_S = 600.0
# FAKE_PASEO_ATTACH_DROP: how long attach waits for the live events its replay loses.
LOST_FRAMES_WAIT_S = 2.0
TURN_ENDS = ("turn_completed", "turn_failed", "turn_canceled")
SEND_COLUMNS = [
    Column("AGENT ID", "agentId", 12),
    Column("STATUS", "status", 12),
    Column("MESSAGE", "message", 40),
]
RUN_COLUMNS = [
    Column("AGENT ID", "agentId", 12),
    Column("STATUS", "status", 10),
    Column("PROVIDER", "provider", 10),
    Column("CWD", "cwd", 30),
    Column("TITLE", "title", 20),
]
PERMIT_COLUMNS = [
    Column("REQUEST ID", "requestId", 12),
    Column("AGENT", "agentShortId", 10),
    Column("TOOL", "name", 20),
    Column("RESULT", "result", 10),
]
KV_COLUMNS = [Column("KEY", "key"), Column("VALUE", "value")]


# =============================================================================================
# Agent commands


def cmd_ls(inv: Invocation) -> Result:
    """ls: visible agents, running first then idle, newest first."""
    thinking = inv.get("thinking")
    if thinking is not None and not thinking.strip():
        raise CommandError("INVALID_THINKING_OPTION", "--thinking cannot be empty")
    labels = {}
    for flag in inv.get("label") or []:
        key, sep, value = flag.partition("=")
        if sep:
            labels[key] = value
    flt: dict[str, Any] = {}
    if inv.get("all"):
        flt["includeArchived"] = True
    if labels:
        flt["labels"] = labels
    if thinking:
        flt["thinkingOptionId"] = thinking.strip()
    client = connect_or_error(inv)
    try:
        agents = client.request("fetch_agents", filter=flt or None)
    except (DaemonError, ConnectionLost) as exc:
        raise CommandError("LIST_AGENTS_FAILED", f"Failed to list agents: {exc}") from exc
    finally:
        client.close()
    if not inv.get("all"):
        agents = [a for a in agents if not a.get("archivedAt")]
    order = {"running": 0, "idle": 1}
    agents.sort(key=lambda a: a["createdAt"], reverse=True)
    agents.sort(key=lambda a: order.get(a["status"], 999))
    columns = [
        Column("AGENT ID", "shortId", 12),
        Column("NAME", "name", 20),
        Column("PROVIDER", "provider", 15),
        Column("THINKING", "thinking", 12),
        Column("STATUS", "status", 10),
        Column("CWD", "cwd", 30),
        Column("CREATED", "created", 15),
    ]
    return Result([ls_item(a) for a in agents], columns, "shortId", is_list=True)


def agent_failure(code: str, message: str, exc: Exception) -> CommandError:
    """A failed agent command: `code` with `message: <daemon error>`, or AGENT_NOT_FOUND where
    the release reports an unknown id so (0.11.0-beta.5: "paseo agent commands report
    AGENT_NOT_FOUND instead of a generic failure").

    Chosen for the commands that resolve one id on the daemon and failed with a generic
    `*_FAILED` code: inspect, send, stop, delete, update and mode, as `paseo agent <cmd>` and as
    root aliases (the same commands). Left as they were: `wait` (an unknown id is an `error`
    outcome with exit 0, not a failure), `logs`/`attach` (plain text, no code), `permit`
    (not a `paseo agent` command), `archive` (AGENT_NOT_FOUND already).
    """
    text = str(exc)
    if release().agent_not_found_code and text.startswith("Agent not found"):
        return CommandError("AGENT_NOT_FOUND", text, 'Use "paseo ls" to list available agents')
    return CommandError(code, f"{message}: {text}")


def require_id(value: str | None, command: str) -> str:
    """MISSING_AGENT_ID for blank ids."""
    if not value or not value.strip():
        raise CommandError(
            "MISSING_AGENT_ID", "Agent ID is required", f"Usage: paseo agent {command} <id>"
        )
    return value


def cmd_inspect(inv: Invocation) -> Result:
    """inspect: PascalCase object; server-side id resolution."""
    agent_id = require_id(inv.args[0], "inspect")
    client = connect_or_error(inv)
    try:
        snapshot = client.request("fetch_agent", agentId=agent_id)
    except (DaemonError, ConnectionLost) as exc:
        raise agent_failure("INSPECT_FAILED", "Failed to inspect agent", exc) from exc
    finally:
        client.close()
    data = inspect_data(snapshot)
    return Result(inspect_rows(data), KV_COLUMNS, "key", is_list=True, serialized=data)


def resolve_provider(inv: Invocation) -> tuple[str, str | None]:
    """--provider p or p/model, plus --model (MISSING_PROVIDER, INVALID_MODEL, ...)."""
    provider = (inv.get("provider") or "").strip()
    model_raw = inv.get("model")
    model = model_raw.strip() if isinstance(model_raw, str) else None
    if not provider:
        raise CommandError(
            "MISSING_PROVIDER",
            "Provider is required",
            "Pass --provider <provider> or --provider <provider>/<model>. Use `paseo provider ls` "
            "to see providers and `paseo provider models <provider>` to see models.",
        )
    if model_raw is not None and not model:
        raise CommandError("INVALID_MODEL", "--model cannot be empty")
    if "/" not in provider:
        return provider, model
    name, _, from_provider = (p.strip() for p in provider.partition("/"))
    if not name or not from_provider:
        raise CommandError(
            "INVALID_PROVIDER",
            "Invalid --provider value",
            "Use --provider <provider> or --provider <provider>/<model>",
        )
    if model and model != from_provider:
        raise CommandError(
            "CONFLICTING_MODEL_OPTIONS",
            "Conflicting model values provided",
            f"--provider specifies model {from_provider}, but --model specifies {model}",
        )
    return name, model or from_provider


def load_output_schema(raw: str) -> dict[str, Any]:
    """--output-schema: a file path or inline JSON object."""
    text = raw.strip()
    if not text:
        raise CommandError(
            "INVALID_OUTPUT_SCHEMA",
            "--output-schema cannot be empty",
            "Provide a JSON schema file path or inline JSON object",
        )
    source = text
    if not text.startswith("{"):
        try:
            source = Path(text).read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(
                "INVALID_OUTPUT_SCHEMA", f"Failed to read output schema file: {text}", str(exc)
            ) from exc
    try:
        schema = json.loads(source)
    except ValueError as exc:
        raise CommandError(
            "INVALID_OUTPUT_SCHEMA", "Failed to parse output schema JSON", str(exc)
        ) from exc
    if not isinstance(schema, dict):
        raise CommandError("INVALID_OUTPUT_SCHEMA", "Output schema must be a JSON object")
    return schema


def run_result(snapshot: dict[str, Any], status: str | None = None) -> dict[str, Any]:
    """run/import JSON shape."""
    return {
        "agentId": snapshot["id"],
        "status": status or ("running" if snapshot["status"] == "running" else "created"),
        "provider": snapshot["provider"],
        "cwd": snapshot["cwd"],
        "title": snapshot.get("title"),
    }


def flag_given(inv: Invocation, flags: str) -> bool:
    """Was the option with these commander flags given (`--no-x` counts when x is False)?"""
    option = Option(flags)
    value = inv.get(option.name)
    return value is False if option.negate else bool(value)


def no_wait_requested(inv: Invocation) -> bool:
    """`run`'s return-at-once flag of this release, or one of its aliases (which may warn)."""
    rel = release()
    alias = any(flag_given(inv, flags) for flags in rel.run_no_wait_aliases)
    if alias and rel.run_alias_warning:
        write(sys.stderr, rel.run_alias_warning + "\n")
    return alias or flag_given(inv, rel.run_no_wait_flags)


def place_agent(client: Client, cwd: str, labels: dict[str, str]) -> None:
    """Where a run's agent goes from 0.1.97 on (run.ts): the calling agent's workspace
    (PASEO_AGENT_ID, as its subagent), PASEO_WORKSPACE_ID's, or a new local workspace.

    Texts from 0.5.0-beta.4; the workspace itself lives only in these stderr lines (the
    fake's daemon places agents by cwd, as 0.1.65 did).
    """
    if caller := os.environ.get("PASEO_AGENT_ID"):
        try:
            parent = client.request("fetch_agent", agentId=caller)
        except DaemonError as exc:
            raise DaemonError(f"Caller agent not found: {caller}") from exc
        labels.setdefault("paseo.parent-agent-id", parent["id"])
    elif workspace := os.environ.get("PASEO_WORKSPACE_ID"):
        write(sys.stderr, f"Using workspace {workspace}\n")
    else:
        workspace = "ws_" + secrets.token_hex(6)
        write(
            sys.stderr,
            f"Created workspace {workspace} - {os.path.basename(cwd) or cwd}\n"
            f"Tip: pass --workspace {workspace} (or set PASEO_WORKSPACE_ID) to run in an "
            "existing workspace.\n",
        )


def cmd_run(inv: Invocation) -> Result:
    """run: create an agent; foreground waits for the first turn."""
    prompt = inv.args[0]
    detach = no_wait_requested(inv)
    schema = (
        load_output_schema(inv.get("outputSchema")) if inv.get("outputSchema") is not None else None
    )
    if not js_trim(prompt):
        raise CommandError(
            "MISSING_PROMPT", "A prompt is required", "Usage: paseo agent run [options] <prompt>"
        )
    if schema is not None and detach:
        raise CommandError(
            "INVALID_OPTIONS",
            f"--output-schema cannot be used with {Option(release().run_no_wait_flags).long}",
            "Structured output requires waiting for the agent to finish",
        )
    wait_ms, _ = timeout_ms(inv.get("waitTimeout"), "Invalid wait timeout value")
    provider, model = resolve_provider(inv)
    client = connect_or_error(inv)
    try:
        thinking = inv.get("thinking")
        if thinking is not None and not thinking.strip():
            raise CommandError(
                "INVALID_THINKING_OPTION",
                "--thinking cannot be empty",
                'Provide a thinking option ID. Use "paseo provider models <provider> '
                '--thinking" to list valid IDs.',
            )
        images = read_images(inv.get("image"))
        labels = parse_labels(inv.get("label"))
        if inv.get("worktree"):
            labels.setdefault("paseo.worktree", inv.get("worktree"))
        cwd = os.path.abspath(inv.get("cwd") or os.getcwd())
        if release().run_places_in_workspaces:
            place_agent(client, cwd, labels)
        snapshot = client.request(
            "create_agent",
            provider=provider,
            model=model,
            cwd=cwd,
            title=inv.get("title") or inv.get("name"),
            modeId=inv.get("mode"),
            thinkingOptionId=thinking.strip() if thinking else None,
            initialPrompt=prompt,
            labels=labels,
            images=images,
        )
        if detach:
            return Result(run_result(snapshot), RUN_COLUMNS, "agentId")
        state = client.request("wait_for_finish", agentId=snapshot["id"], timeoutMs=wait_ms)
    except (DaemonError, ConnectionLost) as exc:
        raise CommandError("AGENT_CREATE_FAILED", f"Failed to create agent: {exc}") from exc
    finally:
        client.close()
    status = "completed" if state["status"] == "idle" else state["status"]
    if schema is not None:
        return structured_output(state)
    return Result(run_result(state.get("final") or snapshot, status), RUN_COLUMNS, "agentId")


def structured_output(state: dict[str, Any]) -> Result:
    """--output-schema: the last message must be a JSON object (the mock never produces one)."""
    if state["status"] != "idle":
        raise CommandError(
            "OUTPUT_SCHEMA_FAILED",
            {
                "timeout": "Timed out waiting for structured output",
                "permission": "Agent is waiting for permission before producing structured output",
            }.get(
                state["status"],
                state.get("error") or "Agent failed before producing structured output",
            ),
        )
    last = (state.get("lastMessage") or "").strip()
    try:
        parsed = json.loads(last)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise CommandError(
            "OUTPUT_SCHEMA_FAILED",
            "Agent response did not match the required output schema",
            last or "No response",
        )
    return Result(parsed, RUN_COLUMNS, "agentId", serialized=parsed)


def cmd_import(inv: Invocation) -> Result:
    """import: run shape; only claude|codex|opencode|acp are accepted by the CLI."""
    session_id = inv.args[0].strip()
    if not session_id:
        raise CommandError(
            "MISSING_SESSION_ID",
            "Session ID is required",
            "Usage: paseo import --provider <provider> <id>",
        )
    provider = (inv.get("provider") or "").strip()
    if provider not in IMPORT_PROVIDERS:
        raise CommandError(
            "INVALID_PROVIDER",
            f"Unsupported provider: {provider}",
            "Supported providers: claude, codex, opencode, acp",
        )
    cwd = inv.get("cwd")
    if cwd is not None and not cwd.strip():
        raise CommandError(
            "INVALID_CWD", "--cwd cannot be empty", "Provide a working directory path or omit --cwd"
        )
    labels = parse_labels(inv.get("label"))
    client = connect_or_error(inv)
    try:
        snapshot = client.request(
            "import_agent",
            provider=provider,
            sessionId=session_id,
            cwd=os.path.abspath(cwd) if cwd else None,
            labels=labels,
        )
    except (DaemonError, ConnectionLost) as exc:
        raise CommandError("AGENT_IMPORT_FAILED", f"Failed to import agent: {exc}") from exc
    finally:
        client.close()
    return Result(run_result(snapshot), RUN_COLUMNS, "agentId")


def send_prompt(inv: Invocation) -> str:
    """Exactly one of the positional prompt, --prompt and --prompt-file."""
    positional = inv.args[1] if len(inv.args) > 1 else None
    sources = [s for s in (positional, inv.get("prompt"), inv.get("promptFile")) if s is not None]
    if len(sources) > 1:
        raise CommandError(
            "CONFLICTING_PROMPT_INPUT",
            "Provide only one prompt source",
            "Use either the [prompt] argument, --prompt, or --prompt-file",
        )
    text = positional if positional is not None else inv.get("prompt")
    if inv.get("promptFile") is not None:
        path = inv.get("promptFile")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(
                "PROMPT_FILE_READ_ERROR", f"Failed to read prompt file: {path}", str(exc)
            ) from exc
    if not text or not js_trim(text):
        raise CommandError(
            "MISSING_PROMPT",
            "A prompt is required",
            "Usage: paseo agent send [options] <id> [prompt]",
        )
    return str(text)


def cmd_send(inv: Invocation) -> Result:
    """send: start a turn (replacing a running one); wait up to 600 s unless --no-wait."""
    agent_arg = inv.args[0]
    if not agent_arg.strip():
        raise CommandError(
            "MISSING_AGENT_ID",
            "Agent ID is required",
            "Usage: paseo agent send [options] <id> [prompt]",
        )
    prompt = send_prompt(inv)
    images = read_images(inv.get("image"))
    client = connect_or_error(inv)
    try:
        reply = client.request("send_message", agentId=agent_arg, text=prompt, images=images)
        if inv.get("wait") is False:
            data = {
                "agentId": agent_arg,
                "status": "sent",
                "message": "Message sent, not waiting for completion",
            }
            return Result(data, SEND_COLUMNS, "agentId")
        limit = float(os.environ.get("FAKE_PASEO_SEND_WAIT_SECONDS") or SEND_WAIT_DEFAULT_S)
        state = client.request(
            "wait_for_finish", agentId=reply["agentId"], timeoutMs=int(limit * 1000)
        )
    except (DaemonError, ConnectionLost) as exc:
        raise agent_failure("SEND_FAILED", "Failed to send message", exc) from exc
    finally:
        client.close()
    status = {"idle": "completed"}.get(state["status"], state["status"])
    message = {
        "completed": "Agent completed processing the message",
        "timeout": "Timed out waiting for agent to finish",
        "permission": "Agent is waiting for permission",
    }.get(status, state.get("error") or "Agent finished with error")
    return Result(
        {"agentId": reply["agentId"], "status": status, "message": message}, SEND_COLUMNS, "agentId"
    )


def cmd_wait(inv: Invocation) -> Result:
    """wait: idle/timeout/permission/error (an unknown id is an `error` outcome, exit 0)."""
    agent_arg = require_id(inv.args[0], "wait")
    wait_ms, label = timeout_ms(inv.get("timeout"), "Invalid timeout value")
    client = connect_or_error(inv)
    try:
        state = client.request("wait_for_finish", agentId=agent_arg, timeoutMs=wait_ms)
        agent_id = (state.get("final") or {}).get("id") or agent_arg
        preview = None
        if state["status"] in ("idle", "timeout"):
            with contextlib.suppress(DaemonError):
                items = client.request("fetch_timeline", agentId=agent_id)["items"]
                preview = curate(items, WAIT_PREVIEW_ITEMS) if items else None
    except (DaemonError, ConnectionLost) as exc:
        raise CommandError("WAIT_FAILED", f"Failed to wait for agent: {exc}") from exc
    finally:
        client.close()
    return Result(
        {
            "agentId": agent_id,
            "status": state["status"],
            "message": wait_message(state, agent_id, label, preview),
        },
        SEND_COLUMNS,
        "agentId",
    )


def wait_message(
    state: dict[str, Any], agent_id: str, label: str | None, preview: str | None
) -> str:
    """wait.ts message texts, with the `Last 5 activity items` preview."""
    status = state["status"]
    if status == "permission":
        pending = (state.get("final") or {}).get("pendingPermissions") or []
        return (
            f"Agent is waiting for permission: {pending[0]['kind']}"
            if pending
            else "Agent is waiting for permission"
        )
    if status == "error":
        return str(state.get("error") or "Agent finished with error")
    if status == "timeout":
        again = f"Run `paseo wait {agent_id}` again to keep waiting."
        message = (
            f"Agent did not finish within {label}. {again}"
            if label
            else f"Agent wait timed out. {again}"
        )
    else:
        message = "Agent is idle."
    if preview and preview.strip():
        message += f"\nLast {WAIT_PREVIEW_ITEMS} activity items:\n{preview}"
    return message


def cmd_stop(inv: Invocation) -> Result:
    """stop: interrupt running agents only."""
    agent_arg = inv.args[0] if inv.args else None
    if not agent_arg and not inv.get("all") and not inv.get("cwd"):
        raise CommandError(
            "MISSING_ARGUMENT",
            "Agent ID required unless --all or --cwd is specified",
            "Usage: paseo agent stop <id> | --all | --cwd <path>",
        )
    client = connect_or_error(inv)
    stopped: list[str] = []
    try:
        targets = select_agents(client, inv, agent_arg)
        for agent in targets:
            if agent["status"] != "running":
                continue
            try:
                client.request("cancel_agent", agentId=agent["id"])
                stopped.append(agent["id"])
            except DaemonError as exc:
                write(sys.stderr, f"Warning: Failed to stop agent {agent['id'][:7]}: {exc}\n")
    except (DaemonError, ConnectionLost) as exc:
        raise agent_failure("STOP_AGENT_FAILED", "Failed to stop agent(s)", exc) from exc
    finally:
        client.close()
    return Result(
        {"stoppedCount": len(stopped), "agentIds": stopped},
        [Column("INTERRUPTED", "stoppedCount")],
        lambda d: "\n".join(d["agentIds"]),
        quiet_empty_line=True,
    )


def select_agents(client: Client, inv: Invocation, agent_arg: str | None) -> list[dict[str, Any]]:
    """Targets of stop/delete: one resolved id, or every non-archived agent (under --cwd)."""
    if agent_arg and not inv.get("all") and not inv.get("cwd"):
        return [client.request("fetch_agent", agentId=agent_arg)]
    agents = [
        a
        for a in client.request("fetch_agents", filter={"includeArchived": True})
        if not a.get("archivedAt")
    ]
    if not inv.get("all") and inv.get("cwd"):
        target = os.path.abspath(inv.get("cwd")).rstrip("/")
        agents = [
            a for a in agents if a["cwd"].rstrip("/") == target or a["cwd"].startswith(target + "/")
        ]
    return agents


def resolve_client_side(query: str, agents: list[dict[str, Any]]) -> dict[str, Any] | None:
    """client.ts resolveAgentId (archive): id, prefix, title, title substring (case-insensitive)."""
    if not query or not agents:
        return None
    lower = query.lower()
    for agent in agents:
        if agent["id"] == query:
            return agent
    prefixed = [a for a in agents if a["id"].lower().startswith(lower)]
    if len(prefixed) == 1:
        return prefixed[0]
    titled = [
        a for a in agents if (a.get("title") or "").lower() == lower and a.get("title") is not None
    ]
    if len(titled) == 1:
        return titled[0]
    partial = [a for a in agents if a.get("title") is not None and lower in a["title"].lower()]
    if len(partial) == 1:
        return partial[0]
    return prefixed[0] if prefixed else None


def cmd_archive(inv: Invocation) -> Result:
    """archive: client-side resolution over the visible list."""
    agent_arg = require_id(inv.args[0], "archive")
    client = connect_or_error(inv)
    try:
        agents = client.request("fetch_agents", filter={"includeArchived": True})
        agent = resolve_client_side(agent_arg, agents)
        if agent is None:
            raise CommandError(
                "AGENT_NOT_FOUND",
                f"Agent not found: {agent_arg}",
                'Use "paseo ls" to list available agents',
            )
        short = agent["id"][:7]
        if agent.get("archivedAt"):
            raise CommandError(
                "AGENT_ALREADY_ARCHIVED",
                f"Agent {short} is already archived",
                f"Archived at: {agent['archivedAt']}",
            )
        if agent["status"] == "running" and not inv.get("force"):
            raise CommandError(
                "AGENT_RUNNING",
                f"Agent {short} is currently running",
                "Use --force to archive a running agent (it will interrupt the active run), or "
                "stop it first with: paseo agent stop. Use paseo agent delete to hard-delete it.",
            )
        reply = client.request("archive_agent", agentId=agent["id"])
    except (DaemonError, ConnectionLost) as exc:
        raise CommandError("ARCHIVE_FAILED", f"Failed to archive agent: {exc}") from exc
    finally:
        client.close()
    data = {"agentId": agent["id"], "status": "archived", "archivedAt": reply["archivedAt"]}
    columns = [
        Column("AGENT ID", "agentId"),
        Column("STATUS", "status"),
        Column("ARCHIVED AT", "archivedAt"),
    ]
    return Result(data, columns, "agentId")


def cmd_delete(inv: Invocation) -> Result:
    """delete: interrupt if running, then hard-delete."""
    agent_arg = inv.args[0] if inv.args else None
    if not agent_arg and not inv.get("all") and not inv.get("cwd"):
        raise CommandError(
            "MISSING_ARGUMENT",
            "Agent ID required unless --all or --cwd is specified",
            "Usage: paseo agent delete <id> | --all | --cwd <path>",
        )
    client = connect_or_error(inv)
    deleted: list[str] = []
    try:
        for agent in select_agents(client, inv, agent_arg):
            try:
                client.request("delete_agent", agentId=agent["id"])
                deleted.append(agent["id"])
            except DaemonError as exc:
                write(sys.stderr, f"Warning: Failed to delete agent {agent['id'][:7]}: {exc}\n")
    except (DaemonError, ConnectionLost) as exc:
        raise agent_failure("DELETE_AGENT_FAILED", "Failed to delete agent(s)", exc) from exc
    finally:
        client.close()
    return Result(
        {"deletedCount": len(deleted), "agentIds": deleted},
        [Column("DELETED", "deletedCount")],
        lambda d: "\n".join(d["agentIds"]),
        quiet_empty_line=True,
    )


def cmd_update(inv: Invocation) -> Result:
    """agent update: rename and merge labels; the only output that shows labels."""
    agent_arg = require_id(inv.args[0], "update")
    labels = parse_labels(inv.get("label"), split_commas=True)
    name = inv.get("name")
    if name is None and not labels:
        raise CommandError("INVALID_OPTIONS", "Nothing to update", "Pass --name and/or --label")
    client = connect_or_error(inv)
    try:
        snapshot = client.request("update_agent", agentId=agent_arg, name=name, labels=labels)
    except (DaemonError, ConnectionLost) as exc:
        raise agent_failure("UPDATE_AGENT_FAILED", "Failed to update agent", exc) from exc
    finally:
        client.close()
    text = ",".join(f"{k}={v}" for k, v in snapshot["labels"].items()) or "-"
    data = {"agentId": snapshot["id"], "name": snapshot.get("title") or "-", "labels": text}
    return Result(
        data,
        [Column("AGENT ID", "agentId"), Column("NAME", "name"), Column("LABELS", "labels")],
        "agentId",
    )


def cmd_mode(inv: Invocation) -> Result:
    """agent mode <id> [mode] [--list]: set the mode (answering a 7-character id), or list
    the agent's modes."""
    agent_arg = require_id(inv.args[0], "mode")
    mode = inv.args[1] if len(inv.args) > 1 else None
    client = connect_or_error(inv)
    try:
        if inv.get("list") or mode is None:
            snapshot = client.request("fetch_agent", agentId=agent_arg)
            modes = [
                {"id": m["id"], "label": m["label"], "description": m.get("description", "")}
                for m in snapshot.get("availableModes") or []
            ]
            return Result(modes, [Column("ID", "id"), Column("LABEL", "label")], "id")
        changed = client.request("set_mode", agentId=agent_arg, modeId=mode)
    except (DaemonError, ConnectionLost) as exc:
        raise agent_failure("MODE_OPERATION_FAILED", "Failed to set mode", exc) from exc
    finally:
        client.close()
    data = {"agentId": changed["agentId"][:7], "mode": changed["modeId"]}
    return Result(data, [Column("AGENT ID", "agentId"), Column("MODE", "mode")], "agentId")


# =============================================================================================
# attach / logs (plain text whatever the format)


def install_detach_handlers() -> None:
    """SIGINT/SIGTERM raise Detach inside blocking reads."""

    def handler(_signum: int, _frame: Any) -> None:
        raise Detach()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def text_connect(inv: Invocation) -> Client:
    """Connect for attach/logs: failures are plain `Error:` lines."""
    try:
        return connect_target(inv)
    except ConnectFailed as exc:
        text = f"Error: Cannot connect to daemon at {daemon_host(inv)}: {exc}\n{CONNECT_DETAILS}\n"
        raise CliExit(1, stderr=text) from exc


def print_item(item: dict[str, Any]) -> None:
    """attach.ts printTimelineItem."""
    kind = item.get("type")
    if kind == "assistant_message":
        write(sys.stdout, item["text"])
    elif kind == "reasoning":
        write(sys.stdout, f"\n[Reasoning] {item['text']}\n")
    elif kind == "tool_call":
        write(sys.stdout, f"\n[Tool: {item['name']}] {item.get('status') or 'started'}\n")
    elif kind == "todo":
        entries = item.get("items", [])
        write(
            sys.stdout,
            f"\n[Todo] {sum(bool(e.get('completed')) for e in entries)}/{len(entries)} completed\n",
        )
    elif kind == "error":
        write(sys.stderr, f"\n[Error] {item.get('message')}\n")
    elif kind == "user_message":
        write(sys.stdout, f"\n[User] {item['text']}\n")


def print_event(event: dict[str, Any]) -> None:
    """attach.ts printStreamEvent."""
    kind = event.get("type")
    if kind == "timeline":
        print_item(event["item"])
    elif kind == "permission_requested":
        request = event["request"]
        text = f"\n[Permission Required] {request.get('name')}\n"
        if request.get("description"):
            text += f"  {request['description']}\n"
        write(sys.stdout, text)
    elif kind == "permission_resolved":
        write(sys.stdout, f"\n[Permission {(event.get('resolution') or {}).get('behavior')}]\n")
    elif kind == "turn_failed":
        write(sys.stderr, f"\n[Turn Failed] {event.get('error')}\n")
    elif kind == "attention_required":
        write(sys.stdout, f"\n[Attention Required: {event.get('reason')}]\n")


def connection_dropped(prefix: str) -> CliExit:
    """Daemon gone under attach / logs -f: exit 1 at once with `Error: <prefix>: <reason>`.

    SIGINT/SIGTERM are ignored from here on, so a signal racing the exit cannot turn it into
    a `Detaching from agent...` exit 0 (or a traceback).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return CliExit(1, stderr=f"Error: {prefix}: {CONNECTION_LOST}\n")


def cmd_attach(inv: Invocation) -> int:
    """attach: header, replay, live events; exits only when signalled or the daemon goes."""
    install_detach_handlers()
    try:
        client = text_connect(inv)
        try:
            subscribed = client.request("subscribe", agentId=inv.args[0])
            with_replay = frames_with_the_timeline(client, subscribed["agentId"])
        except (DaemonError, ConnectionLost) as exc:
            raise CliExit(1, stderr=f"Error: Failed to attach to agent: {exc}\n") from exc
        write(
            sys.stdout,
            f"Attaching to agent {subscribed['agentId'][:7]}...\n(Press Ctrl+C to detach)\n\n",
        )
        for item in subscribed["items"]:
            print_item(item)
        for message in with_replay:
            if message["event"].get("type") != "timeline":
                print_event(message["event"])  # else lost, no marker: no listener yet
        while (message := client.next_event()) is not None:
            print_event(message["event"])
        raise connection_dropped("Failed to attach to agent")
    except Detach:
        write(sys.stdout, "\n\nDetaching from agent...\n")
    return 0


def frames_with_the_timeline(client: Client, agent_id: str) -> list[dict[str, Any]]:
    """FAKE_PASEO_ATTACH_DROP=K: the live frames that reach attach with its timeline, of
    which the K timeline events are never printed (none without the knob).

    The real attach (attach.ts, the same in every release) registers its `agent_stream`
    listener only after printing the replay, and `ws` handles every frame of one socket read
    before that: the live frames that arrived with the timeline are lost. Here the replay
    waits until K timeline events came after the snapshot (at most LOST_FRAMES_WAIT_S, and
    not past the turn's end), as if the CLI had been slow to read its timeline: those are the
    first K live events after the replay, all sent before it was printed. Only a running agent
    sends frames then, so an attach of an idle agent (the `send` path) loses nothing; the
    daemon's timeline, `logs` and a later attach keep everything.
    """
    wanted = int(os.environ.get("FAKE_PASEO_ATTACH_DROP") or 0)
    if wanted <= 0:
        return []
    if client.request("fetch_agent", agentId=agent_id).get("status") != "running":
        return []
    frames: list[dict[str, Any]] = []
    deadline = time.monotonic() + LOST_FRAMES_WAIT_S
    try:
        while sum(f["event"].get("type") == "timeline" for f in frames) < wanted:
            client.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            message = client.next_event()
            if message is None:
                break
            frames.append(message)
            if message["event"].get("type") in TURN_ENDS:
                break
    except ConnectFailed:
        pass  # no more frames in flight: the rest are printed live
    finally:
        client.sock.settimeout(None)
    return frames


def parse_tail(raw: str | None) -> int | None:
    """--tail N like Number.parseInt; -1 marks an invalid value."""
    if raw is None:
        return None
    match = re.match(r"\s*([+-]?\d+)", raw)
    return int(match.group(1)) if match else -1


def matches_filter(item: dict[str, Any], flt: str | None) -> bool:
    """logs --filter tools|text|errors|permissions|<substring of the item type>."""
    if not flt:
        return True
    kind = item.get("type", "").lower()
    flt = flt.lower()
    groups = {
        "tools": kind == "tool_call",
        "text": kind in ("user_message", "assistant_message", "reasoning"),
        "errors": kind == "error",
        "permissions": "permission" in kind,
    }
    return groups.get(flt, flt in kind)


def tail_error(raw: str) -> CliExit:
    """Invalid --tail value."""
    return CliExit(
        1, stderr=f"Error: Invalid --tail value: {raw}\nUsage: --tail <n> (where n is >= 0)\n"
    )


def cmd_logs(inv: Invocation) -> int:
    """logs [-f]: transcript; follow mode prints each new timeline item on its own line."""
    follow = bool(inv.get("follow"))
    if follow:
        install_detach_handlers()
    client = text_connect(inv)
    tail = parse_tail(inv.get("tail"))
    flt = inv.get("filter")
    try:
        try:
            op = "subscribe" if follow else "fetch_timeline"
            reply = client.request(op, agentId=inv.args[0])
        except (DaemonError, ConnectionLost) as exc:
            raise CliExit(1, stderr=f"Error: Failed to get logs: {exc}\n") from exc
        if tail is not None and tail < 0:
            raise tail_error(inv.get("tail"))
        items = [i for i in reply["items"] if matches_filter(i, flt)]
        if not follow:
            if tail != 0:
                write(sys.stdout, curate(items, tail) + "\n")
            return 0
        follow_logs(client, items, 10 if tail is None else tail, flt)
    except Detach:
        pass
    finally:
        client.close()
    return 0


def follow_logs(client: Client, items: list[dict[str, Any]], tail: int, flt: str | None) -> None:
    """logs -f: last N entries, the banner, then one curated line per timeline event."""
    if tail > 0:
        existing = curate(items, tail)
        if existing != "No activity to display.":
            write(sys.stdout, existing + "\n")
    label = "no history" if tail == 0 else f"last {tail} entr{'y' if tail == 1 else 'ies'}"
    write(sys.stdout, f"\n--- Following logs ({label}; Ctrl+C to stop) ---\n\n")
    while (message := client.next_event()) is not None:
        event = message["event"]
        if event.get("type") != "timeline" or not matches_filter(event["item"], flt):
            continue
        text = curate([event["item"]])
        if text != "No activity to display.":
            write(sys.stdout, text + "\n")
    raise connection_dropped("Failed to get logs")


# =============================================================================================
# Providers and permissions


def static_providers() -> list[dict[str, Any]]:
    """What `provider ls` prints when the daemon is unreachable (no mock, all available)."""
    rows = []
    for pid, label, default_mode, modes in PROVIDERS:
        if pid == "mock":
            continue
        rows.append(
            {
                "provider": pid,
                "label": label,
                "status": "available",
                "enabled": "Enabled",
                "defaultMode": default_mode or "-",
                "modes": ", ".join(m[1] for m in modes) or "-",
            }
        )
    return rows


def provider_columns() -> list[Column]:
    """provider ls table schema."""
    return [
        Column("PROVIDER", "provider", 12),
        Column("LABEL", "label", 16),
        Column("STATUS", "status", 12),
        Column("ENABLED", _enabled_cell, 10),
        Column("DEFAULT MODE", "defaultMode", 14),
        Column("MODES", _modes_cell, 30),
    ]


def _enabled_cell(item: dict[str, Any]) -> str:
    """A bool (newest) or the word; the table shows the word either way."""
    enabled = item["enabled"]
    return enabled if isinstance(enabled, str) else ("Enabled" if enabled else "Disabled")


def _modes_cell(item: dict[str, Any]) -> str:
    """`[{id, label}]` (newest) or the joined labels; the table shows the labels either way."""
    modes = item["modes"]
    return modes if isinstance(modes, str) else ", ".join(mode["label"] for mode in modes)


def cmd_provider_ls(inv: Invocation) -> Result:
    """provider ls: the daemon's snapshot, or the static list when it is down (exit 0)."""
    try:
        client = connect_target(inv)
    except ConnectFailed:
        return Result(static_providers(), provider_columns(), "provider", is_list=True)
    try:
        entries = client.request("providers_snapshot")
    except (DaemonError, ConnectionLost):
        return Result(static_providers(), provider_columns(), "provider", is_list=True)
    finally:
        client.close()
    structured = release().provider_modes_with_ids
    rows = [
        {
            "provider": e["provider"],
            "label": e.get("label") or e["provider"],
            "status": "available" if e["status"] == "ready" else e["status"],
            "enabled": bool(e.get("enabled"))
            if structured
            else ("Enabled" if e.get("enabled") else "Disabled"),
            "defaultMode": e.get("defaultModeId") or "default",
            "modes": [{"id": m["id"], "label": m["label"]} for m in e.get("modes") or []]
            if structured
            else ", ".join(m["label"] for m in e.get("modes") or []),
        }
        for e in entries
    ]
    return Result(rows, provider_columns(), "provider", is_list=True)


def cmd_provider_models(inv: Invocation) -> Result:
    """provider models: UNKNOWN_ERROR (with a stack) when the daemon is down."""
    provider = inv.args[0]
    try:
        client = connect_target(inv)
    except ConnectFailed as exc:
        stack = (
            f"Error: {exc}\n    at DaemonClient.connect (file:///usr/lib/node_modules/@getpaseo/server/dist/"
            "client/daemon-client.js:412:23)\n    at async connectToDaemon (file:///usr/lib/node_modules/"
            "@getpaseo/cli/dist/utils/client.js:201:9)"
        )
        raise CommandError("UNKNOWN_ERROR", str(exc), stack) from exc
    try:
        models = client.request("provider_models", provider=provider)
    except (DaemonError, ConnectionLost) as exc:
        raise CommandError("PROVIDER_ERROR", f"Failed to list models: {exc}") from exc
    finally:
        client.close()
    rows = [
        {
            "model": m["label"],
            "id": m["id"],
            "description": m.get("description") or "",
            "thinkingOptionIds": [t["id"] for t in m.get("thinkingOptions") or []],
            "defaultThinkingOptionId": m.get("defaultThinkingOptionId"),
            "thinkingOptions": ", ".join(t["id"] for t in m.get("thinkingOptions") or []) or "none",
        }
        for m in models
    ]
    columns = [Column("MODEL", "model", 30), Column("ID", "id", 30)]
    if inv.get("thinking"):
        columns.append(Column("THINKING", "thinkingOptions", 20))
    return Result(rows, columns, "id", is_list=True)


def cmd_permit_ls(inv: Invocation) -> Result:
    """permit ls: pending requests of every visible agent."""
    client = connect_or_error(inv)
    try:
        agents = client.request("fetch_agents", filter={"includeArchived": True})
    except (DaemonError, ConnectionLost) as exc:
        raise CommandError("LIST_PERMISSIONS_FAILED", f"Failed to list permissions: {exc}") from exc
    finally:
        client.close()
    id_length = None if release().permit_full_ids else 8
    rows = [
        {
            "id": p["id"][:id_length],
            "agentId": a["id"],
            "agentShortId": a["id"][:7],
            "name": p.get("name"),
            "description": p.get("description") or "-",
        }
        for a in agents
        for p in a.get("pendingPermissions") or []
    ]
    columns = [
        Column("AGENT", "agentShortId", 12),
        Column("REQ_ID", "id", 12),
        Column("TOOL", "name", 20),
        Column("DESCRIPTION", "description", 50),
    ]
    return Result(rows, columns, "id", is_list=True)


def permit_respond(inv: Invocation, behavior: str) -> Result:
    """permit allow|deny <agent> [req_id] [--all]."""
    verb = "allow" if behavior == "allow" else "deny"
    req_id = inv.args[1] if len(inv.args) > 1 else None
    if behavior == "deny" and not req_id and not inv.get("all"):
        raise CommandError(
            "MISSING_ARGUMENT",
            "Request ID is required unless --all is specified",
            "Usage: paseo permit deny <agent> <req_id> or paseo permit deny <agent> --all",
        )
    response: dict[str, Any] = {"behavior": behavior}
    if behavior == "allow" and inv.get("input"):
        try:
            response["updatedInput"] = json.loads(inv.get("input"))
        except ValueError as exc:
            raise CommandError(
                "INVALID_JSON",
                f"Invalid JSON for --input: {exc}",
                'Provide valid JSON, e.g., --input \'{"key": "value"}\'',
            ) from exc
    if inv.get("message"):
        response["message"] = inv.get("message")
    if inv.get("interrupt"):
        response["interrupt"] = True
    client = connect_or_error(inv)
    try:
        agent = client.request("fetch_agent", agentId=inv.args[0])
        targets = permit_targets(agent, req_id, bool(inv.get("all")))
        results = []
        for request in targets:
            client.request(
                "respond_permission",
                agentId=agent["id"],
                requestId=request["id"],
                response=response,
            )
            results.append(
                {
                    "requestId": request["id"][:8],
                    "agentId": agent["id"],
                    "agentShortId": agent["id"][:7],
                    "name": request.get("name"),
                    "result": "allowed" if behavior == "allow" else "denied",
                }
            )
    except (DaemonError, ConnectionLost) as exc:
        code = "ALLOW_PERMISSION_FAILED" if behavior == "allow" else "DENY_PERMISSION_FAILED"
        raise CommandError(code, f"Failed to {verb} permission: {exc}") from exc
    finally:
        client.close()
    return Result(results, PERMIT_COLUMNS, "requestId", is_list=True)


def permit_targets(
    agent: dict[str, Any], req_id: str | None, everything: bool
) -> list[dict[str, Any]]:
    """Which pending requests a permit command answers."""
    pending = agent.get("pendingPermissions") or []
    if not pending:
        raise CommandError(
            "NO_PENDING_PERMISSIONS", f"No pending permissions for agent {agent['id'][:7]}"
        )
    if everything or not req_id:
        return list(pending)
    match = next((p for p in pending if p["id"] == req_id or p["id"].startswith(req_id)), None)
    if match is None:
        raise CommandError(
            "PERMISSION_NOT_FOUND",
            f"Permission request not found: {req_id}",
            f"Available requests: {', '.join(p['id'][:8] for p in pending)}",
        )
    return [match]


# =============================================================================================
# Daemon lifecycle


# Daemon settings a managed `daemon start` no longer takes from its environment (0.9.0):
# the daemon reads them from config.json. Provider credentials, the password and runtime
# controls (PASEO_NODE_ENV, the fake's knobs) still pass.
CONFIG_ONLY_ENV = ("PORT", "PASEO_LISTEN", "PASEO_RELAY_ENABLED", "PASEO_HOST")
# `daemon start` flags removed in 0.9.0, and the command that replaces each. The wording is
# invented: the docs say only that they "fail before side effects, with the corresponding
# `config set` migration".
REMOVED_START_FLAGS = {
    "--listen <listen>": "paseo daemon config set daemon.listen {value} --home {home}",
    "--port <port>": "paseo daemon config set daemon.listen 127.0.0.1:{value} --home {home}",
    "--no-relay": "paseo daemon config set daemon.relay.enabled false --home {home}",
    "--foreground": "paseo daemon run --home {home}",
}
START_TIMEOUT_S = 600.0
# config.ts redacts these keys when it prints a configuration.
SECRET_KEY = re.compile(r"password|(?:api|private|access)[_-]?key|token|secret|authorization", re.I)


def daemon_env(inv: Invocation) -> dict[str, str]:
    """Child environment: --home sets PASEO_HOME, --listen/--port set PASEO_LISTEN (before
    0.9.0; from then on the daemon's settings come from config.json only)."""
    env = dict(os.environ)
    if inv.get("home"):
        env["PASEO_HOME"] = inv.get("home")
    if release().persistent_daemon_config:
        for key in CONFIG_ONLY_ENV:
            env.pop(key, None)
        return env
    if inv.get("listen"):
        env["PASEO_LISTEN"] = inv.get("listen")
    elif inv.get("port"):
        env["PASEO_LISTEN"] = f"127.0.0.1:{inv.get('port')}"
    if inv.get("hostnames"):
        env["PASEO_HOSTNAMES"] = inv.get("hostnames")
    return env


def home_text(inv: Invocation) -> str:
    """The home a local command means, as given (nothing is created for it)."""
    return str(inv.get("home") or os.environ.get("PASEO_HOME") or "~/.paseo")


def reject_host(inv: Invocation) -> None:
    """Local-only commands (start, daemon run, config) refuse --host (0.9.0; invented text)."""
    if release().persistent_daemon_config and inv.get("host"):
        raise CommandError(
            "INVALID_OPTIONS",
            "--host cannot be used with a local daemon command",
            "Select the local daemon with --home <path>",
        )


def refuse_removed_start_flags(inv: Invocation) -> None:
    """0.9.0: the listen/relay/foreground flags of `daemon start` fail, naming their migration."""
    for flags, migration in REMOVED_START_FLAGS.items():
        option = Option(flags)
        if flag_given(inv, flags):
            value = inv.get(option.name)
            raise CommandError(
                "INVALID_OPTIONS",
                f"`paseo daemon start {option.long}` was removed: the daemon reads its "
                "settings from config.json in its home",
                "Instead run: " + migration.format(value=value, home=home_text(inv)),
            )


def cmd_daemon_start(inv: Invocation) -> int:
    """daemon start: detached child that reports once it listens; --foreground blocks."""
    config_only = release().persistent_daemon_config
    if config_only:
        reject_host(inv)
        refuse_removed_start_flags(inv)
    elif inv.get("listen") and inv.get("port"):
        raise CliExit(1, stderr="Cannot use --listen and --port together\n")
    env = daemon_env(inv)
    if inv.get("foreground"):
        os.environ.update(env)
        import fake_paseo_daemon

        return fake_paseo_daemon.worker_main(foreground=True)
    import subprocess  # only `daemon start` spawns

    home = resolve_home(env)
    log_path = home / LOG_FILENAME
    child = subprocess.Popen(
        [sys.executable, os.path.realpath(sys.argv[0]), "__fake-daemon-worker"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    limit = float(inv.get("timeout") or START_TIMEOUT_S) if config_only else 15.0
    code = wait_until_listening(child, home, limit)
    if code is not None:
        tail = "\n".join([line for line in read_text(log_path).split("\n") if line][-30:])
        message = f"Daemon failed to start in background (exit code {code})."
        if tail:
            message += f"\n\nRecent daemon logs:\n{tail}"
        raise CliExit(1, stderr=message + "\n")
    child.returncode = 0  # detached on purpose: no "still running" warning
    if config_only:
        # It "reports the actual listening address and supervisor PID" (wording invented).
        listen = (read_pid_file(home) or {}).get("listen")
        write(
            sys.stdout,
            f"Daemon started in background (PID {child.pid}), listening on {listen}.\n"
            f"Logs: {log_path}\n",
        )
        return 0
    write(sys.stdout, f"Daemon starting in background (PID {child.pid}).\nLogs: {log_path}\n")
    return 0


def cmd_daemon_run(inv: Invocation) -> Result | int:
    """daemon run (0.9.0): the daemon in the foreground, honouring PASEO_LISTEN and the other
    environment overrides; `already_running` when the home has a live daemon."""
    reject_host(inv)
    home = selected_home(inv)
    info = read_pid_file(home)
    if info and pid_alive(info["pid"]):
        data = {
            "action": "already_running",
            "home": str(home),
            "pid": str(info["pid"]),
            "message": f"Daemon is already running (PID {info['pid']})",
        }
        return Result(data, [Column("STATUS", "action"), Column("MESSAGE", "message")], "action")
    os.environ["PASEO_HOME"] = str(home)
    os.environ.pop("PASEO_HOST", None)
    import fake_paseo_daemon

    return fake_paseo_daemon.worker_main(foreground=True)


def set_config_path(config: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path (`daemon.relay.enabled`) in the configuration, making parents."""
    keys = path.split(".")
    if not all(keys):
        raise CommandError("INVALID_CONFIG_PATH", f"Invalid configuration path: {path}")
    node = config
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[keys[-1]] = value


def redacted(value: Any) -> Any:
    """config.ts redact(): secret-looking keys print as `[redacted]`."""
    if isinstance(value, list):
        return [redacted(item) for item in value]
    if isinstance(value, dict):
        return {k: "[redacted]" if SECRET_KEY.search(k) else redacted(v) for k, v in value.items()}
    return value


def config_result(data: dict[str, Any]) -> Result:
    """config.ts result(): one object, printed as JSON in every format but yaml."""
    return Result(data, [], lambda _: "configuration", serialized=data, human=to_json)


def cmd_daemon_config_set(inv: Invocation) -> Result:
    """daemon config set <path> <value> [--string]: saved into $HOME/config.json. A value is
    JSON when it parses as JSON, else a string (config.ts)."""
    reject_host(inv)
    path, raw = inv.args[0], inv.args[1]
    value: Any = raw
    if not inv.get("string"):
        with contextlib.suppress(ValueError):
            value = json.loads(raw)
    home = selected_home(inv)
    config = load_config(home)
    set_config_path(config, path, value)
    write_json_atomic(home / CONFIG_FILENAME, config)
    info = read_pid_file(home)
    home_arg = json.dumps(str(home))
    if not (info and pid_alive(info["pid"])):
        data = {
            "action": "saved",
            "applied": False,
            "message": "Saved; not applied to a running daemon",
            "nextCommand": f"paseo daemon start --home {home_arg}",
        }
    else:
        # The real CLI asks the running daemon to reload; the fake's daemon cannot, so it
        # reports what a reload says of a path that needs a restart (invented wording).
        data = {
            "action": "saved",
            "appliedPaths": [],
            "restartRequiredPaths": [path],
            "overrideControlledPaths": [],
            "message": "Saved; restart the daemon to apply it",
            "nextCommand": f"paseo daemon restart --home {home_arg}",
        }
    return config_result(data)


def cmd_daemon_config_get(inv: Invocation) -> Result:
    """daemon config get [path]: the configured value (secrets redacted)."""
    reject_host(inv)
    path = inv.args[0] if inv.args else None
    value: Any = load_config(selected_home(inv))
    for key in path.split(".") if path else []:
        value = value.get(key) if isinstance(value, dict) else None
    if path and SECRET_KEY.search(path):
        value = "[redacted]"
    data = {
        "source": "configured",
        "path": path,
        "set": value is not None,
        "value": redacted(value),
    }
    return config_result(data)


def read_text(path: Path) -> str:
    """File text or empty."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def wait_until_listening(
    child: subprocess.Popen[bytes], home: Path, limit: float = 15.0
) -> int | None:
    """None once the child wrote its pid file and accepts connections; its exit code if it died."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        code = child.poll()
        if code is not None:
            return code
        info = read_pid_file(home)
        if info and info.get("pid") == child.pid and probe_listen(str(info.get("listen") or "")):
            return None
        time.sleep(0.02)
    return None


def probe_listen(listen: str) -> bool:
    """Does something accept connections at this listen address?"""
    host = normalize_daemon_host(listen)
    if not host:
        return False
    try:
        family, address, _pw, _tls, _hdr = parse_target(host)
        open_socket(family, address, False).close()
    except ConnectFailed:
        return False
    return True


def local_state(inv: Invocation) -> dict[str, Any]:
    """resolveLocalDaemonState: home, listen, pid info, liveness (PASEO_LISTEN ignored)."""
    env = dict(os.environ)
    env.pop("PASEO_LISTEN", None)
    if inv.get("home"):
        env["PASEO_HOME"] = inv.get("home")
    home = resolve_home(env)
    info = read_pid_file(home)
    running = bool(info and pid_alive(info["pid"]))
    listen = str((info or {}).get("listen") or config_listen(load_config(home), env))
    return {"home": home, "info": info, "running": running, "listen": listen}


def probe_status(listen: str) -> dict[str, Any] | None:
    """Ask the recorded daemon for its status (PASEO_HOST is ignored on purpose)."""
    host = normalize_daemon_host(listen)
    if not host:
        return None
    try:
        client = connect(host)
    except ConnectFailed:
        return None
    try:
        return dict(client.request("status"))
    except (DaemonError, ConnectionLost):
        return None
    finally:
        client.close()


def cmd_daemon_status(inv: Invocation) -> Result:
    """daemon status: always exit 0."""
    state = local_state(inv)
    info, home = state["info"] or {}, state["home"]
    probe = probe_status(state["listen"]) if state["running"] else None
    local = "running" if state["running"] else ("stale_pid" if info else "stopped")
    if state["running"] and probe is None:
        local = "unresponsive"
    server_id = (probe or {}).get("serverId") or read_text(home / "server-id").strip() or None
    alive = state["running"]
    data: dict[str, Any] = {
        "serverId": server_id,
        "localDaemon": local,
        "connectedDaemon": "reachable" if probe else "unreachable",
        "home": str(home),
        "listen": state["listen"],
        "hostname": info.get("hostname") if alive else None,
        "pid": info.get("pid") if alive else None,
        "startedAt": info.get("startedAt") if alive else None,
        "owner": f"{info.get('uid')}@{info.get('hostname')}" if alive else None,
        "logPath": str(home / LOG_FILENAME),
        "runningAgents": probe["runningAgents"] if probe else None,
        "idleAgents": probe["idleAgents"] if probe else None,
        "daemonNode": "node" if alive else "-",
        "cliNode": sys.executable,
        "cliVersion": release().version,
        "daemonVersion": probe["version"] if probe else None,
        "desktopManaged": False,
        "providers": [
            {"label": label, "path": None, "version": None}
            for label in ("Claude", "Codex", "OpenCode")
        ],
    }
    if local == "stale_pid":
        data["note"] = f"Stale PID file for {info.get('pid')}"
    return Result(status_rows(data), KV_COLUMNS, "key", is_list=True, serialized=data)


def status_rows(d: dict[str, Any]) -> list[dict[str, str]]:
    """daemon status table rows (as recorded)."""

    def text(value: Any) -> str:
        return "-" if value is None else str(value)

    agents = (
        "-"
        if d["runningAgents"] is None
        else f"{d['runningAgents']} running, {d['idleAgents']} idle"
    )
    rows = [
        ("Server ID", d["serverId"]),
        ("Local Daemon", d["localDaemon"]),
        ("Connected Daemon", d["connectedDaemon"]),
        ("Home", d["home"]),
        ("Listen", d["listen"]),
        ("Hostname", d["hostname"]),
        ("PID", d["pid"]),
        ("Started", d["startedAt"]),
        ("Owner", d["owner"]),
        ("Logs", d["logPath"]),
        ("Daemon Node", d["daemonNode"]),
        ("CLI Node", d["cliNode"]),
        ("CLI", d["cliVersion"]),
        ("Daemon Version", d["daemonVersion"]),
        ("Agents", agents),
    ]
    if "note" in d:
        rows.append(("Note", d["note"]))
    rows += [("", ""), ("Providers", "")]
    rows += [(f"  {p['label']}", p["path"] or "not found") for p in d["providers"]]
    return [{"key": k, "value": text(v)} for k, v in rows]


def cmd_daemon_stop(inv: Invocation) -> Result:
    """daemon stop: lifecycle request (or SIGTERM), wait, optional SIGKILL with --force."""
    state = local_state(inv)
    info = state["info"]
    columns = [
        Column("STATUS", "action"),
        Column("HOME", "home"),
        Column("PID", "pid"),
        Column("MESSAGE", "message"),
    ]
    if not info or not state["running"]:
        suffix = f" (stale PID file for {info['pid']})" if info else ""
        data = {
            "action": "not_running",
            "home": str(state["home"]),
            "pid": str(info["pid"]) if info else "-",
            "message": f"Daemon is not running{suffix}",
        }
        return Result(data, columns, "action")
    pid = int(info["pid"])
    limit = float(inv.get("timeout") or 15)
    requested = request_shutdown(state["listen"])
    if not requested:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    stopped = wait_pid_exit(pid, limit)
    forced = False
    if not stopped and inv.get("force"):
        forced = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        stopped = wait_pid_exit(pid, 3.0)
    if not stopped:
        raise CommandError(
            "STOP_FAILED", f"Timed out waiting for daemon PID {pid} to stop after {int(limit)}s"
        )
    message = (
        "Daemon owner process was force-stopped"
        if forced
        else "Daemon stopped gracefully"
        if requested
        else "Daemon stopped via owner PID signal"
    )
    return Result(
        {"action": "stopped", "home": str(state["home"]), "pid": str(pid), "message": message},
        columns,
        "action",
    )


def request_shutdown(listen: str) -> bool:
    """Ask the daemon to shut down over its socket."""
    host = normalize_daemon_host(listen)
    if not host:
        return False
    try:
        client = connect(host)
    except ConnectFailed:
        return False
    try:
        client.request("shutdown")
        return True
    except (DaemonError, ConnectionLost):
        return False
    finally:
        client.close()


def wait_pid_exit(pid: int, limit: float) -> bool:
    """Poll until the process is gone."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def cmd_root(inv: Invocation) -> int:
    """Bare `paseo`: the real CLI starts onboarding or opens the desktop app; the fake refuses."""
    if inv.args and Path(inv.args[0]).is_dir():
        raise CliExit(1, stderr="fake paseo: opening the desktop app is not supported\n")
    if inv.args:
        raise CliExit(1, stderr=f"error: unknown command '{inv.args[0]}'\n")
    raise CliExit(
        1, stderr="fake paseo: the interactive onboard flow is not supported; pass a subcommand\n"
    )


# =============================================================================================
# Command tree


def opt(flags: str, description: str = "", **kwargs: Any) -> Option:
    """Shorthand."""
    return Option(flags, description, **kwargs)


def json_host_opts() -> list[Option]:
    """--json and --host, declared on every agent command."""
    return [opt("--json", "Output in JSON format"), opt("--host <host>", HOST_HELP)]


def leaf(
    name: str,
    description: str,
    action: Any,
    args: list[tuple[str, bool, str]] | None = None,
    options: list[Option] | None = None,
    host: bool = True,
    aliases: list[str] | None = None,
) -> Command:
    """A runnable command."""
    opts = list(options or [])
    if host:
        opts += json_host_opts()
    return Command(name, description, args or [], opts, action=action, aliases=aliases or [])


# `run`'s return-at-once flags as each release describes them.
NO_WAIT_HELP = {
    "-d, --detach": "Run in background (detached)",
    "-d, --background": "Run in background (return immediately)",
    "--no-wait": "Return immediately without waiting for completion",
    "--detach": "Deprecated alias of --background",
}


def run_no_wait_options() -> list[Option]:
    """This release's flag to return at once, and its hidden aliases."""
    rel = release()
    return [
        opt(rel.run_no_wait_flags, NO_WAIT_HELP[rel.run_no_wait_flags]),
        *(
            opt(flags, NO_WAIT_HELP.get(flags, ""), hidden=True)
            for flags in rel.run_no_wait_aliases
        ),
    ]


def agent_commands() -> list[Command]:
    """The agent commands, both top-level and under `paseo agent`."""
    label = opt(
        "--label <key=value>", "Add label(s) to the agent (can be used multiple times)", repeat=True
    )
    return [
        leaf(
            "ls",
            "List agents. By default excludes archived agents.",
            cmd_ls,
            options=[
                opt("-a, --all", "Include archived agents"),
                opt("-g, --global", "Legacy no-op (kept for compatibility)"),
                opt(
                    "--label <key=value>",
                    "Filter by label (can be used multiple times)",
                    repeat=True,
                ),
                opt("--thinking <id>", "Filter by thinking option ID"),
            ],
        ),
        leaf(
            "inspect",
            "Show detailed information about an agent",
            cmd_inspect,
            [("id", True, "Agent ID (or prefix)")],
        ),
        leaf(
            "run",
            "Create and start an agent with a task",
            cmd_run,
            [("prompt", True, "The task/prompt for the agent")],
            [
                *run_no_wait_options(),
                opt("--title <title>", "Assign a title to the agent"),
                opt("--name <name>", "Hidden alias for --title", hidden=True),
                opt(
                    "--provider <provider>",
                    "Agent provider, or provider/model (e.g. codex or codex/gpt-5.4)",
                ),
                opt("--model <model>", "Model to use"),
                opt("--thinking <id>", "Thinking option ID to use for this run"),
                opt("--mode <mode>", "Provider-specific mode (e.g., plan, default, bypass)"),
                opt("--worktree <name>", "Create agent in a new git worktree"),
                opt("--base <branch>", "Base branch for worktree (default: current branch)"),
                opt(
                    "--image <path>",
                    "Attach image(s) to the initial prompt (can be used multiple times)",
                    repeat=True,
                ),
                opt("--cwd <path>", "Working directory (default: current)"),
                label,
                opt(
                    "--wait-timeout <duration>",
                    "Maximum time to wait for agent to finish (e.g., 30s, 5m, 1h). "
                    "Default: no limit",
                ),
                opt(
                    "--output-schema <schema>",
                    "Output JSON matching the provided schema file path or inline JSON schema",
                ),
            ],
        ),
        leaf(
            "import",
            "Import an existing provider session as a Paseo agent",
            cmd_import,
            [("id", True, "Provider session/thread ID to import")],
            [
                opt("--provider <provider>", "Agent provider id", mandatory=True),
                opt("--cwd <path>", "Working directory for providers that require it"),
                label,
            ],
        ),
        leaf(
            "send",
            "Send a message to an agent",
            cmd_send,
            [("id", True, "Agent ID (or prefix)"), ("prompt", False, "The message to send")],
            [
                opt("--prompt <text>", "The message to send (alternative to the argument)"),
                opt("--prompt-file <path>", "Read the message from a UTF-8 file"),
                opt(
                    "--image <path>",
                    "Attach image(s) to the message (can be used multiple times)",
                    repeat=True,
                ),
                opt("--no-wait", "Return immediately without waiting for completion"),
            ],
        ),
        leaf(
            "wait",
            "Wait for an agent to become idle",
            cmd_wait,
            [("id", True, "Agent ID (or prefix)")],
            [opt("--timeout <seconds>", "Maximum wait time (default: no limit)")],
        ),
        leaf(
            "attach",
            "Attach to a running agent's output stream",
            cmd_attach,
            [("id", True, "Agent ID (or prefix)")],
        ),
        leaf(
            "logs",
            "View agent activity logs",
            cmd_logs,
            [("id", True, "Agent ID (or prefix)")],
            [
                opt("-f, --follow", "Follow log output (streaming)"),
                opt("--tail <lines>", "Show last n entries"),
                opt("--filter <type>", "Filter by event type (tools, text, errors, permissions)"),
                opt("--since <time>", "Show logs since timestamp"),
            ],
        ),
        leaf(
            "stop",
            "Stop an agent (interrupt if running)",
            cmd_stop,
            [("id", False, "Agent ID (or prefix) - optional if --all or --cwd specified")],
            [opt("--all", "Stop all agents"), opt("--cwd <path>", "Stop all agents in directory")],
        ),
        leaf(
            "archive",
            "Archive an agent (soft-delete)",
            cmd_archive,
            [("id", True, "Agent ID (or prefix)")],
            [opt("--force", "Force archive running agent (interrupts it first)")],
        ),
        leaf(
            "delete",
            "Delete an agent (interrupt if running, then hard-delete)",
            cmd_delete,
            [("id", False, "Agent ID (or prefix) - optional if --all or --cwd specified")],
            [
                opt("--all", "Delete all agents"),
                opt("--cwd <path>", "Delete all agents in directory"),
            ],
        ),
    ]


def build_tree() -> Command:
    """The whole `paseo` command tree."""
    root = Command(
        "paseo",
        "Paseo CLI - control your AI coding agents",
        [],
        [
            opt("-o, --format <format>", "Output format: table, json, yaml", default="table"),
            opt("--json", "Output in JSON format (alias for --format json)"),
            opt("-q, --quiet", "Minimal output (IDs only)"),
            opt("--no-headers", "Omit table headers"),
            opt("--no-color", "Disable colored output"),
            opt("-v, --version", "output the version number"),
            *target_options(),
        ],
        action=cmd_root,
    )
    agent = Command("agent", "Manage agents")
    agent.add(
        *agent_commands(),
        leaf(
            "update",
            "Update an agent's name or labels",
            cmd_update,
            [("id", True, "Agent ID (or prefix)")],
            [
                opt("--name <name>", "New agent name"),
                opt(
                    "--label <key=value>",
                    "Add/replace label(s) (can be used multiple times, comma-separated)",
                    repeat=True,
                ),
            ],
        ),
        leaf(
            "mode",
            "Show or set an agent's mode",
            cmd_mode,
            [("id", True, "Agent ID (or prefix)"), ("mode", False, "Mode to set")],
            [opt("--list", "List the agent's modes")],
        ),
    )
    provider = Command("provider", "Manage agent providers").add(
        leaf("ls", "List available providers and status", cmd_provider_ls),
        leaf(
            "models",
            "List models for a provider",
            cmd_provider_models,
            [("provider", True, "Provider id")],
            [opt("--thinking", "Include thinking options")],
        ),
    )
    permit = Command("permit", "Manage permission requests").add(
        leaf("ls", "List pending permission requests", cmd_permit_ls),
        leaf(
            "allow",
            "Allow a permission request",
            lambda inv: permit_respond(inv, "allow"),
            [
                ("agent", True, "Agent ID (or prefix)"),
                ("req_id", False, "Permission request ID (optional if --all)"),
            ],
            [
                opt("--all", "Allow all pending permissions for this agent"),
                opt("--input <json>", "Modified input parameters (JSON)"),
            ],
        ),
        leaf(
            "deny",
            "Deny a permission request",
            lambda inv: permit_respond(inv, "deny"),
            [
                ("agent", True, "Agent ID (or prefix)"),
                ("req_id", False, "Permission request ID (optional if --all)"),
            ],
            [
                opt("--all", "Deny all pending permissions for this agent"),
                opt("--message <msg>", "Denial reason message"),
                opt("--interrupt", "Stop agent after denial"),
            ],
        ),
    )
    start_opts = daemon_start_options()
    status_opts = [
        opt("--home <path>", "Paseo home directory (default: ~/.paseo)"),
        opt("--json", "Output in JSON format"),
    ]
    daemon = Command("daemon", "Manage the local Paseo daemon").add(
        leaf(
            "start",
            "Start the local Paseo daemon",
            cmd_daemon_start,
            options=start_opts,
            host=False,
        ),
        leaf(
            "stop",
            "Stop the local Paseo daemon",
            cmd_daemon_stop,
            options=[
                *status_opts,
                opt("--timeout <seconds>", "Seconds to wait before giving up (default: 15)"),
                opt("--force", "Force-kill the daemon if it does not stop in time"),
            ],
            host=False,
        ),
        leaf(
            "status", "Show local daemon status", cmd_daemon_status, options=status_opts, host=False
        ),
    )
    if release().persistent_daemon_config:
        daemon.add(*daemon_config_commands(status_opts))
    root.add(
        *agent_commands(),
        agent,
        provider,
        permit,
        daemon,
        leaf(
            "start",
            "Start the local Paseo daemon (alias of daemon start)",
            cmd_daemon_start,
            options=start_opts,
            host=False,
        ),
        leaf(
            "status",
            "Show local daemon status (alias of daemon status)",
            cmd_daemon_status,
            options=status_opts,
            host=False,
        ),
    )
    return root


def target_options() -> list[Option]:
    """`--host` and `--home` as root options, where the release has them (0.8.0+)."""
    if not release().global_target_options:
        return []
    return [
        opt("--host <host>", HOST_HELP),
        opt("--home <path>", "Paseo home directory (default: ~/.paseo)"),
    ]


def daemon_start_options() -> list[Option]:
    """Before 0.9.0 the daemon's settings; from then on only the home and a timeout (the
    removed flags are hidden and fail with their migration)."""
    home = opt("--home <path>", "Paseo home directory (default: ~/.paseo)")
    if release().persistent_daemon_config:
        return [
            home,
            opt("--timeout <seconds>", "Seconds to wait for the daemon to be ready (default: 600)"),
            *(opt(flags, hidden=True) for flags in REMOVED_START_FLAGS),
        ]
    return [
        opt("--listen <listen>", "Listen target (host:port, port, or unix socket path)"),
        opt("--port <port>", "Port to listen on (default: 6767)"),
        home,
        opt("--foreground", "Run in foreground (don't daemonize)"),
        opt("--no-relay", "Disable relay connection"),
        opt("--no-mcp", "Disable the Agent MCP HTTP endpoint"),
        opt("--no-inject-mcp", "Do not inject the MCP server"),
        opt("--hostnames <hosts>", 'Comma-separated Host allowlist values (or "true")'),
    ]


def daemon_config_commands(home_json: list[Option]) -> list[Command]:
    """`daemon run` and `daemon config set|get` (0.9.0)."""
    config = Command("config", "Read or edit persistent local configuration (local operation)")
    config.add(
        leaf(
            "set",
            "Set a configuration value",
            cmd_daemon_config_set,
            [("path", True, ""), ("value", True, "")],
            [*home_json, opt("--string", "Interpret value literally as a string")],
            host=False,
        ),
        leaf(
            "get",
            "Show the configuration or one value",
            cmd_daemon_config_get,
            [("path", False, "")],
            home_json,
            host=False,
        ),
    )
    run = leaf(
        "run",
        "Run the local Paseo daemon in the foreground",
        cmd_daemon_run,
        options=home_json,
        host=False,
    )
    return [run, config]


# =============================================================================================
# Entry point


def logged_prompt(inv: Invocation | None) -> str | None:
    """The prompt text of run/send, for FAKE_PASEO_ARGV_LOG."""
    if inv is None:
        return None
    if inv.command.name == "run" and inv.args:
        return inv.args[0]
    if inv.command.name == "send":
        if len(inv.args) > 1:
            return inv.args[1]
        if inv.get("prompt") is not None:
            return str(inv.get("prompt"))
        if inv.get("promptFile") is not None:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                return Path(inv.get("promptFile")).read_text(encoding="utf-8")
    return None


def log_invocation(argv: list[str], inv: Invocation | None) -> None:
    """FAKE_PASEO_ARGV_LOG: one JSON line per invocation (appended atomically)."""
    path = os.environ.get("FAKE_PASEO_ARGV_LOG")
    if not path:
        return
    line = (
        json.dumps(
            {
                "argv": argv,
                "env_PASEO_HOST_set": "PASEO_HOST" in os.environ,
                "paseo_env": sorted(key for key in os.environ if key.startswith("PASEO_")),
                "prompt": logged_prompt(inv),
            }
        )
        + "\n"
    )
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line.encode("utf-8", "surrogateescape"))
        finally:
            os.close(fd)


def execute(inv: Invocation) -> int:
    """Run the action and render its result (errors on stderr, exit 1)."""
    out = OutputOptions.from_invocation(inv)
    try:
        result = inv.command.action(inv)  # type: ignore[misc]
        if isinstance(result, int):
            return result
        text = render(result, out)
        if text is not None:
            write(sys.stdout, text + "\n")
        return 0
    except CommandError as exc:
        write(sys.stderr, render_error(exc, out) + "\n")
        return 1


def hang_until_killed(argv: list[str]) -> None:
    """FAKE_PASEO_HANG_COMMANDS: a frozen CLI (a starved machine) for the commands listed,
    by their first argument (`ls`), while the file FAKE_PASEO_HANG_WHILE exists if that is
    set; the invocation is logged first."""
    hung = {name.strip() for name in os.environ.get("FAKE_PASEO_HANG_COMMANDS", "").split(",")}
    switch = os.environ.get("FAKE_PASEO_HANG_WHILE")
    if argv[:1] and argv[0] in hung - {""} and (not switch or os.path.exists(switch)):
        while True:
            time.sleep(3600)


def main(argv: list[str]) -> int:
    """Entry point of the `paseo` script."""
    if argv[:1] == ["__fake-daemon-worker"]:
        import fake_paseo_daemon

        return fake_paseo_daemon.worker_main(foreground=False)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(errors="surrogateescape")  # type: ignore[attr-defined]
    inv: Invocation | None = None
    early: CliExit | None = None
    try:
        inv = parse_command(build_tree(), [], argv, [])
    except CliExit as exc:
        early = exc
    log_invocation(argv, inv)
    delay = float(os.environ.get("FAKE_PASEO_STARTUP_DELAY") or 0)
    if delay > 0:
        time.sleep(delay)
    hang_until_killed(argv)
    try:
        if early is not None:
            raise early
        assert inv is not None
        return execute(inv)
    except CliExit as exc:
        write(sys.stdout, exc.stdout)
        write(sys.stderr, exc.stderr)
        return exc.code
