"""What both transports share when they describe a tool call: its kind and the size cap.

A tool's detail can hold a whole file or a command's output. Every text field of a `tool`
event's detail is cut at `MAX_TOOL_FIELD_BYTES` (UTF-8), and the detail then says
`truncated: true`, so one stored and streamed event never holds megabytes.
"""

from __future__ import annotations

from typing import Any, Literal

ToolKind = Literal["shell", "read", "edit", "write", "search", "plan", "other"]

# The most one text field of a tool's detail keeps (64 KiB of UTF-8); the documented cap.
MAX_TOOL_FIELD_BYTES = 64 * 1024

# Tool names as providers spell them (lower-cased), for where only the name is known (the
# CLI's `[Tool: name] status` line) or the detail has no type the gateway knows.
_KIND_BY_NAME: dict[str, ToolKind] = {
    "bash": "shell",
    "shell": "shell",
    "exec": "shell",
    "exec_command": "shell",
    "local_shell": "shell",
    "read": "read",
    "read_file": "read",
    "view": "read",
    "edit": "edit",
    "multiedit": "edit",
    "apply_patch": "edit",
    "str_replace": "edit",
    "write": "write",
    "write_file": "write",
    "create": "write",
    "grep": "search",
    "glob": "search",
    "search": "search",
    "find": "search",
    "websearch": "search",
    "web_search": "search",
    "todowrite": "plan",
    "update_plan": "plan",
    "exitplanmode": "plan",
    "plan": "plan",
}


def kind_of_name(name: str) -> ToolKind:
    """The kind a tool name stands for; `other` for names the gateway does not know."""
    return _KIND_BY_NAME.get(name.strip().lower(), "other")


def capped(value: str) -> tuple[str, bool]:
    """`value` cut to `MAX_TOOL_FIELD_BYTES` of UTF-8 (never inside a character), and
    whether it was cut."""
    encoded = value.encode("utf-8")
    if len(encoded) <= MAX_TOOL_FIELD_BYTES:
        return value, False
    return encoded[:MAX_TOOL_FIELD_BYTES].decode("utf-8", errors="ignore"), True


def capped_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """`detail` with every text field capped; `truncated: true` when one was cut."""
    out: dict[str, Any] = {}
    truncated = False
    for key, value in detail.items():
        if isinstance(value, str):
            value, cut = capped(value)
            truncated = truncated or cut
        out[key] = value
    if truncated:
        out["truncated"] = True
    return out
