"""Every non-2xx answer is application/problem+json with a stable `code`."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.openai_errors import openai_error_response, speaks_openai
from app.db import Database
from app.errors import GatewayError, from_paseo
from app.paseo.errors import PaseoError
from app.services import audit

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:paseo-gateway:problem:"


class Problem(BaseModel):
    """RFC 9457 problem details, plus a stable machine-readable `code`."""

    type: str
    title: str
    status: int
    detail: str
    code: str


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **jsonable_encoder(extra),
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def gateway_error_response(error: GatewayError, path: str = "") -> JSONResponse:
    """The error as `path` answers errors: OpenAI's shape under /v1, problem+json elsewhere."""
    if speaks_openai(path):
        headers = dict(error.headers)
        if session_id := error.extra.get("session_id"):
            headers["X-Paseo-Session"] = str(session_id)  # the session exists all the same
        field = error.extra.get("field")
        return openai_error_response(
            error.status, error.code, error.detail, param=field, headers=headers
        )
    return problem_response(
        error.status, error.code, error.title, error.detail, headers=error.headers, **error.extra
    )


async def _gateway_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    await _audit_refusal(request, exc.code)
    return gateway_error_response(exc, request.url.path)


async def _audit_refusal(request: Request, code: str) -> None:
    """Record the refused change in the audit trail; a failure to is logged, never answered
    instead of the problem itself."""
    db = getattr(request.app.state, "db", None)
    if not isinstance(db, Database):
        return
    try:
        await audit.record_refusal(db, code, session_id=_path_uuid(request, "session_id"))
    except Exception:
        logger.exception("could not record a refused request in the audit trail")


def _path_uuid(request: Request, name: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(request.path_params[name]))
    except (KeyError, ValueError):
        return None


async def _paseo_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PaseoError)
    logger.warning("paseo call failed: %s (exit %s) %s", exc.code, exc.exit_status, exc.stderr)
    return await _gateway_error(request, from_paseo(exc))


# What pydantic says of a body that is not a JSON object (e.g. a form, or no content type).
_NOT_AN_OBJECT = ("model_attributes_type", "dict_type", "model_type")


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    openai = speaks_openai(request.url.path)
    if broken := _json_decode_error(exc.errors()):
        if openai:
            return openai_error_response(400, "malformed_body", broken)
        return problem_response(400, "malformed_body", "The body is not valid JSON", broken)
    await _audit_refusal(request, "validation_failed")
    errors = [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
        for error in exc.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"])
    detail = f"{where}: {first['msg']}" if where else str(first["msg"])
    content_type = request.headers.get("content-type", "")
    if first["loc"] == ["body"] and first.get("type") in _NOT_AN_OBJECT:
        if "json" not in content_type:
            detail = (
                "the body must be a JSON object sent with `Content-Type: application/json` "
                f"(this request's content type: {content_type or 'none'})"
            )
        else:
            example = '{"model": "...", "messages": [...]}' if openai else '{"prompt": "..."}'
            detail = f"the body must be a JSON object, like {example}"
    if openai:
        param = ".".join(str(part) for part in first["loc"][1:]) or None
        return openai_error_response(422, "validation_failed", detail, param=param)
    return problem_response(422, "validation_failed", "Invalid request", detail, errors=errors)


def _json_decode_error(errors: Sequence[Any]) -> str | None:
    """What is wrong with a body that is not JSON at all (a 400, not a field to fix)."""
    for error in errors:
        if error.get("type") == "json_invalid":
            loc = list(error.get("loc", ()))
            at = f" at character {loc[1]}" if len(loc) > 1 else ""
            reason = (error.get("ctx") or {}).get("error", "JSON decode error")
            return f"the body is not valid JSON ({reason}{at}); send a JSON object"
    return None


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {400: "malformed_body", 404: "route_not_found", 405: "method_not_allowed"}.get(
        exc.status_code, "http_error"
    )
    title = str(exc.detail) if exc.detail else "HTTP error"
    if speaks_openai(request.url.path):
        headers = getattr(exc, "headers", None)
        return openai_error_response(exc.status_code, code, title, headers=headers)
    return problem_response(
        exc.status_code, code, title, title, headers=getattr(exc, "headers", None)
    )


def internal_error_response(path: str = "") -> JSONResponse:
    """What a bug answers (app.api.middleware.UnexpectedErrorMiddleware logs it)."""
    detail = (
        "An unexpected error occurred; the gateway's log has it under this answer's X-Request-ID."
    )
    if speaks_openai(path):
        return openai_error_response(500, "internal_error", detail)
    return problem_response(500, "internal_error", "Internal error", detail)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(PaseoError, _paseo_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Any other exception: UnexpectedErrorMiddleware (inside the request-id middleware).


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entry declaring which problems a route can return."""
    descriptions = {
        400: "The body is not valid JSON",
        401: "No API key, or an unknown or revoked one",
        403: "The API key lacks the scope this route needs",
        404: "Not found",
        409: "Conflict",
        413: "Payload too large",
        415: "An image's media type is not allowed (png, jpeg, gif, webp)",
        422: "Invalid input",
        429: "Too many prompts for this API key, or its budget is used up; see Retry-After",
        502: "Paseo answered with an error or unparseable output",
        503: "Paseo (binary or daemon) unavailable",
        504: "Paseo did not answer in time",
    }
    return {
        status: {
            "model": Problem,
            "description": descriptions.get(status, "Problem"),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
