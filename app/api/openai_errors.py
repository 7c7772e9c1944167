"""OpenAI's error shape, `{"error": {"message", "type", "param", "code"}}`, for `/v1/...`.

OpenAI's clients read it (the `openai` package raises `APIStatusError` subclasses from it);
every other route keeps answering problem+json. A field error is a 400 here (OpenAI's status
for a bad request), not the 422 the gateway's own routes answer.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from app.schemas_openai import OpenAIError, OpenAIErrorDetail

OPENAI_PREFIX = "/v1"
OPENAI_MEDIA_TYPE = "application/json"


def speaks_openai(path: str) -> bool:
    """Whether `path` is one of the OpenAI-compatible routes (or under their prefix)."""
    return path == OPENAI_PREFIX or path.startswith(OPENAI_PREFIX + "/")


def openai_status(status: int) -> int:
    return 400 if status == 422 else status


def openai_error_type(status: int) -> str:
    """OpenAI's `type` for a status."""
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    return "server_error" if status >= 500 else "invalid_request_error"


def openai_error_body(
    status: int, code: str, message: str, *, param: str | None = None
) -> dict[str, Any]:
    detail = OpenAIErrorDetail(
        message=message, type=openai_error_type(status), param=param, code=code
    )
    return OpenAIError(error=detail).model_dump()


def openai_error_response(
    status: int,
    code: str,
    message: str,
    *,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    status = openai_status(status)
    return JSONResponse(
        openai_error_body(status, code, message, param=param),
        status_code=status,
        media_type=OPENAI_MEDIA_TYPE,
        headers=headers,
    )


def openai_error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entry for the OpenAI-compatible routes."""
    descriptions = {
        400: "Invalid request: a body that is not JSON, a bad field, or a bad header",
        401: "No API key, or an unknown or revoked one",
        403: "The API key lacks the scope this route needs",
        404: "No such model or session",
        409: "The session is already running a turn, or is closed",
        413: "Payload too large",
        415: "An image's media type is not allowed (png, jpeg, gif, webp)",
        429: "Too many prompts for this API key; see Retry-After",
        502: "Paseo answered with an error, or the turn failed",
        503: "Paseo unavailable, or this gateway is shutting down",
        504: "Paseo did not answer in time, or the turn timed out",
    }
    return {
        status: {
            "model": OpenAIError,
            "description": descriptions.get(status, "Error"),
        }
        for status in statuses
    }
