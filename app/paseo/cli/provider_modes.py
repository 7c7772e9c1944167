"""The mode ids behind the labels that older CLIs print in `provider ls`.

Up to 0.5 `paseo provider ls --json` joins its modes' labels into one string; newer CLIs print
`[{id, label}]`. A mode is switched by id, so for the older form the ids come from Paseo's
provider manifest (`srv/server/agent/provider-manifest.ts`), whose built-in modes are static.
A label not in it (a custom provider's) has no known id.
"""

from __future__ import annotations

_ACP = "https://agentclientprotocol.com/protocol/session-modes#"

# provider -> {label: id}, as the manifest defines them.
MANIFEST_MODE_IDS: dict[str, dict[str, str]] = {
    "claude": {
        "Always Ask": "default",
        "Accept File Edits": "acceptEdits",
        "Plan Mode": "plan",
        "Bypass": "bypassPermissions",
    },
    "codex": {"Default Permissions": "auto", "Full Access": "full-access"},
    "copilot": {"Agent": _ACP + "agent", "Plan": _ACP + "plan", "Autopilot": _ACP + "autopilot"},
    "opencode": {"Build": "build", "Full Access": "full-access", "Plan": "plan"},
    "kimi": {"Always Ask": "default", "YOLO": "bypassPermissions", "Plan": "plan"},
    "mock": {"Load Test": "load-test"},
}


def mode_id(provider: str, label: str) -> str | None:
    """The id of `provider`'s mode labelled `label`, if Paseo's manifest has it."""
    return MANIFEST_MODE_IDS.get(provider, {}).get(label)
