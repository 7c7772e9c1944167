"""Domain errors: each carries the HTTP status and stable `code` of its problem+json answer.

Services raise these (they import nothing from FastAPI); app/api/problems.py renders them.
"""

from __future__ import annotations

from typing import Any

from app.paseo.daemon_config import DEFAULT_DAEMON
from app.paseo.errors import PaseoError, PaseoErrorKind


class GatewayError(Exception):
    status: int = 500
    code: str = "internal_error"
    title: str = "Internal error"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


class NotFound(GatewayError):
    status, code, title = 404, "not_found", "Not found"


class SessionNotFound(NotFound):
    code = "session_not_found"


class TurnNotFound(NotFound):
    code = "turn_not_found"


class AgentNotFound(NotFound):
    code = "agent_not_found"


class PermissionNotFound(NotFound):
    code = "permission_not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class WebhookNotFound(NotFound):
    code = "webhook_not_found"


class DeliveryNotFound(NotFound):
    code = "delivery_not_found"


class Unauthorized(GatewayError):
    status, code, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str, *, invalid_token: bool = False) -> None:
        challenge = 'Bearer realm="paseo-gateway"'
        if invalid_token:
            challenge += ', error="invalid_token"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class Forbidden(GatewayError):
    status, code, title = 403, "insufficient_scope", "The API key lacks a scope"

    def __init__(self, scope: str) -> None:
        super().__init__(
            f"this route needs a key with the {scope!r} scope",
            headers={
                "WWW-Authenticate": f'Bearer realm="paseo-gateway", error="insufficient_scope", '
                f'scope="{scope}"'
            },
            scope=scope,
        )


class RateLimited(GatewayError):
    status, code, title = 429, "rate_limited", "Too many prompts"


class BudgetExceeded(GatewayError):
    status, code, title = 429, "budget_exceeded", "The API key's budget is used up"


class Conflict(GatewayError):
    status, code, title = 409, "conflict", "Conflict"


class TurnInProgress(Conflict):
    code, title = "turn_in_progress", "A turn is already running"


class NoRunningTurn(Conflict):
    code, title = "no_running_turn", "No turn is running"


class PaseoUnsupported(Conflict):
    code, title = "paseo_unsupported", "This Paseo cannot do that"


class SteerUnsupported(PaseoUnsupported):
    code, title = "steer_unsupported", "This Paseo cannot steer a running turn"


class NoWaitingTurn(Conflict):
    code, title = "no_waiting_turn", "No turn waits for a permission"


class SessionClosed(Conflict):
    code, title = "session_closed", "Session is closed"


class AgentRunning(Conflict):
    code, title = "agent_running", "Agent is running"


class DeliveryInFlight(Conflict):
    code, title = "delivery_in_flight", "An attempt of that delivery is in flight"


class InvalidInput(GatewayError):
    status, code, title = 422, "invalid_input", "Invalid input"


class UnknownDaemon(InvalidInput):
    code = "unknown_daemon"


class UnknownModel(InvalidInput):
    code, title = "unknown_model", "The provider does not list that model"


class UnknownMode(InvalidInput):
    code, title = "unknown_mode", "The provider or agent has no such mode"


class CwdNotFound(InvalidInput):
    code, title = "cwd_not_found", "The working directory does not exist"


class CwdNotADirectory(InvalidInput):
    code, title = "cwd_not_a_directory", "The working directory is not a directory"


class WebhookUrlInvalid(InvalidInput):
    code, title = "webhook_url_invalid", "The webhook URL is not allowed"


class WebhookTargetPrivate(InvalidInput):
    code, title = "webhook_target_private", "The webhook URL resolves to a non-public address"


class WebhookHostUnresolvable(InvalidInput):
    code, title = "webhook_host_unresolvable", "The webhook URL's host does not resolve"


class IdempotencyKeyReused(InvalidInput):
    code = "idempotency_key_reused"


class SearchQueryEmpty(InvalidInput):
    code, title = "search_query_empty", "The search text has no word to search for"


class SessionExists(Conflict):
    code, title = "session_exists", "A session for that already exists"


class PayloadTooLarge(GatewayError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class ImageTooLarge(PayloadTooLarge):
    code, title = "image_too_large", "An image is too large"


class TooManyImages(PayloadTooLarge):
    code, title = "too_many_images", "Too many images"


class ImageTypeUnsupported(GatewayError):
    status, code, title = 415, "image_type_unsupported", "Image type not allowed"


class ImageInvalid(InvalidInput):
    code = "image_invalid"


class MediaUnsupported(InvalidInput):
    """Images or attachments this transport, or this kind of prompt, cannot carry."""

    code = "media_unsupported"


class PaseoUnavailable(GatewayError):
    status, code, title = 503, "paseo_unavailable", "Paseo is unavailable"


class DaemonNotRunning(PaseoUnavailable):
    code = "daemon_not_running"


class DaemonUnavailable(PaseoUnavailable):
    code, title = "daemon_unavailable", "The daemon is unavailable"


class PaseoNotInstalled(PaseoUnavailable):
    code = "paseo_not_installed"


class ProviderNotReady(PaseoUnavailable):
    code, title = "provider_not_ready", "The provider's models or modes cannot be read yet"


class PaseoBadOutput(GatewayError):
    status, code, title = 502, "paseo_bad_output", "Paseo answered something unexpected"


class PaseoFailed(GatewayError):
    status, code, title = 502, "paseo_failed", "Paseo reported a failure"


class PaseoTimeout(GatewayError):
    status, code, title = 504, "paseo_timeout", "Paseo did not answer in time"


_PASEO_KIND_TO_ERROR: dict[PaseoErrorKind, type[GatewayError]] = {
    PaseoErrorKind.UNAVAILABLE: PaseoUnavailable,
    PaseoErrorKind.NOT_FOUND: AgentNotFound,
    PaseoErrorKind.CONFLICT: Conflict,
    PaseoErrorKind.INVALID_INPUT: InvalidInput,
    PaseoErrorKind.BAD_OUTPUT: PaseoBadOutput,
    PaseoErrorKind.TIMEOUT: PaseoTimeout,
    PaseoErrorKind.UNSUPPORTED: PaseoUnsupported,
    PaseoErrorKind.FAILED: PaseoFailed,
}


def from_paseo(error: PaseoError) -> GatewayError:
    """The gateway error for a CLI failure: its kind picks the status, its code (and the
    daemon's name, of several) travels along."""
    converted = _converted(error)
    if error.daemon is not None:
        converted.extra["daemon"] = error.daemon
        converted.detail = named_by_daemon(error, converted.detail)
    return converted


def named_by_daemon(error: PaseoError, message: str) -> str:
    """`message` about `error`, saying which daemon failed when it is one of several."""
    if error.daemon in (None, DEFAULT_DAEMON):
        return message
    return f"daemon {error.daemon!r}: {message}"


def _address_setting(error: PaseoError) -> str:
    """Where the failing daemon's address is configured."""
    if error.daemon in (None, DEFAULT_DAEMON):
        return "PASEO_GATEWAY_PASEO_HOST"
    return f"the address of daemon {error.daemon!r} (PASEO_GATEWAY_DAEMONS or its file)"


def _converted(error: PaseoError) -> GatewayError:
    if error.code == "AGENT_RUNNING":
        return AgentRunning(
            f"{error.message}. Stop it first, or pass force=true.", paseo_code=error.code
        )
    if error.code == "DAEMON_NOT_RUNNING":
        return DaemonNotRunning(
            f"{error.message}. Start the Paseo daemon or fix {_address_setting(error)}.",
            paseo_code=error.code,
        )
    if error.code == "STEER_UNSUPPORTED":
        return SteerUnsupported(error.message, paseo_code=error.code)
    if error.code == "NO_ACTIVE_TURN":
        return NoRunningTurn(f"{error.message}; send it as a new prompt", paseo_code=error.code)
    if error.code == "PROMPT_TOO_LONG":
        return PayloadTooLarge(error.message, paseo_code=error.code)
    if error.code == "PASEO_NOT_INSTALLED":
        return PaseoNotInstalled(
            f"{error.message}. Install paseo or set PASEO_GATEWAY_PASEO_BIN.",
            paseo_code=error.code,
        )
    return _PASEO_KIND_TO_ERROR[error.kind](error.message, paseo_code=error.code)
