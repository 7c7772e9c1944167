"""The one error type a Paseo client raises: a code and message, and what the CLI said if
it was the CLI (exit status, stderr: optional detail, never needed to decide)."""

from __future__ import annotations

import re
from enum import StrEnum


class PaseoErrorKind(StrEnum):
    """What went wrong, in the terms the service layer decides on (HTTP mapping lives in app)."""

    UNAVAILABLE = "unavailable"  # daemon unreachable or paseo binary missing
    NOT_FOUND = "not_found"  # no such agent
    CONFLICT = "conflict"  # e.g. AGENT_RUNNING, AGENT_ALREADY_ARCHIVED
    INVALID_INPUT = "invalid_input"  # the CLI rejected an argument
    BAD_OUTPUT = "bad_output"  # the CLI printed something we cannot parse
    TIMEOUT = "timeout"  # the CLI did not answer in time
    UNSUPPORTED = "unsupported"  # this Paseo (version or transport) cannot do it
    FAILED = "failed"  # any other failure the CLI reported


# CLI error codes whose meaning does not depend on the message.
_KIND_BY_CODE: dict[str, PaseoErrorKind] = {
    "DAEMON_NOT_RUNNING": PaseoErrorKind.UNAVAILABLE,
    "PASEO_NOT_INSTALLED": PaseoErrorKind.UNAVAILABLE,
    # The newest CLI: both PASEO_HOME and PASEO_HOST (or --home and --host) name a daemon, so
    # it talks to none; the gateway's configuration has to change (paseo-versions.md §3.1).
    "TARGET_AMBIGUOUS": PaseoErrorKind.UNAVAILABLE,
    # The CLI's code for an unknown agent (archive always; every `paseo agent` command from
    # 0.11.0-beta.5, which gave INSPECT_FAILED/SEND_FAILED/... "Agent not found" before).
    "AGENT_NOT_FOUND": PaseoErrorKind.NOT_FOUND,
    # A `--workspace` id the daemon lacks: the argument is wrong, the agent is not gone.
    "WORKSPACE_NOT_FOUND": PaseoErrorKind.INVALID_INPUT,
    # The daemon is older than a flag the CLI was given (provider options, queue, thinking).
    "DAEMON_UPDATE_REQUIRED": PaseoErrorKind.UNSUPPORTED,
    "AGENT_RUNNING": PaseoErrorKind.CONFLICT,
    "AGENT_ALREADY_ARCHIVED": PaseoErrorKind.CONFLICT,
    "NO_ACTIVE_TURN": PaseoErrorKind.CONFLICT,
    "STEER_UNSUPPORTED": PaseoErrorKind.UNSUPPORTED,
    "CLI_TIMEOUT": PaseoErrorKind.TIMEOUT,
    "DAEMON_TIMEOUT": PaseoErrorKind.TIMEOUT,
    "DAEMON_UNKNOWN_SCHEMA": PaseoErrorKind.INVALID_INPUT,
    "SEND_FAILED": PaseoErrorKind.FAILED,
    "BAD_OUTPUT": PaseoErrorKind.BAD_OUTPUT,
    "OUTPUT_TOO_LARGE": PaseoErrorKind.BAD_OUTPUT,
    "CLI_USAGE": PaseoErrorKind.INVALID_INPUT,
    "MISSING_PROMPT": PaseoErrorKind.INVALID_INPUT,
    "MISSING_PROVIDER": PaseoErrorKind.INVALID_INPUT,
    "INVALID_PROVIDER": PaseoErrorKind.INVALID_INPUT,
    "INVALID_MODEL": PaseoErrorKind.INVALID_INPUT,
    "CONFLICTING_MODEL_OPTIONS": PaseoErrorKind.INVALID_INPUT,
    "CONFLICTING_PROMPT_INPUT": PaseoErrorKind.INVALID_INPUT,
    "INVALID_OPTIONS": PaseoErrorKind.INVALID_INPUT,
    "INVALID_TIMEOUT": PaseoErrorKind.INVALID_INPUT,
    "INVALID_THINKING_OPTION": PaseoErrorKind.INVALID_INPUT,
    "INVALID_LABEL": PaseoErrorKind.INVALID_INPUT,
    "INVALID_CWD": PaseoErrorKind.INVALID_INPUT,
    "INVALID_ENV": PaseoErrorKind.INVALID_INPUT,
    "INVALID_PROVIDER_OPTIONS": PaseoErrorKind.INVALID_INPUT,
    "CONFLICTING_SEND_BEHAVIOR": PaseoErrorKind.INVALID_INPUT,
    "MISSING_SESSION_ID": PaseoErrorKind.INVALID_INPUT,
    "MISSING_AGENT_ID": PaseoErrorKind.INVALID_INPUT,
    "MISSING_ARGUMENT": PaseoErrorKind.INVALID_INPUT,
    "PROMPT_FILE_READ_ERROR": PaseoErrorKind.INVALID_INPUT,
    "PROVIDER_ERROR": PaseoErrorKind.INVALID_INPUT,
    "AGENT_CREATE_FAILED": PaseoErrorKind.INVALID_INPUT,
    "AGENT_IMPORT_FAILED": PaseoErrorKind.INVALID_INPUT,
    "PROMPT_TOO_LONG": PaseoErrorKind.INVALID_INPUT,
}

# Failures whose code is generic but whose message says the agent does not exist.
_NOT_FOUND_MARKERS = ("Agent not found", "No agent found")


# The CLI names the daemon address in its errors; a tcp:// address may carry a password.
_PASSWORD = re.compile(r"password=[^&\s\"']*")


def redact(text: str) -> str:
    """The text with any daemon password replaced, so it may be logged or shown."""
    return _PASSWORD.sub("password=***", text)


class PaseoError(Exception):
    """A paseo CLI call failed: its `error.code`, message, exit status and stderr.

    Every text is redacted on the way in: no daemon password reaches a log or a client.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        exit_status: int | None = None,
        stderr: str = "",
        details: object = None,
    ) -> None:
        message, stderr = redact(message), redact(stderr)
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.exit_status = exit_status
        self.stderr = stderr
        self.details = redact(details) if isinstance(details, str) else details
        self.daemon: str | None = None  # which daemon failed, once a `Daemon` names it

    @property
    def kind(self) -> PaseoErrorKind:
        if any(marker in self.message for marker in _NOT_FOUND_MARKERS):
            return PaseoErrorKind.NOT_FOUND
        return _KIND_BY_CODE.get(self.code, PaseoErrorKind.FAILED)
