"""Turning what the CLI printed into typed results or a PaseoError."""

from __future__ import annotations

import json
import re
from typing import TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from app.paseo.cli.process import CliResult
from app.paseo.errors import PaseoError

ModelT = TypeVar("ModelT", bound=BaseModel)

_COMMANDER_ERROR = re.compile(r"^error: (?P<message>.+)$", re.MULTILINE)
_TEXT_ERROR = re.compile(r"^Error: (?P<message>.+)$", re.MULTILINE)
_CONNECT_FAILURE = "Cannot connect to daemon"
_LINE_OBJECT = re.compile(r"^\{", re.MULTILINE)


def error_from_result(result: CliResult, *, text_code: str = "CLI_FAILED") -> PaseoError:
    """The CLI's own error: JSON `{"error": {...}}` on stderr, or its text forms."""
    stderr = result.stderr.strip()
    parsed = _json_error(stderr)
    if parsed is not None:
        code, message, details = parsed
        return PaseoError(
            code, message, exit_status=result.exit_status, stderr=result.stderr, details=details
        )
    if match := _COMMANDER_ERROR.search(stderr):
        code, message = "CLI_USAGE", match["message"]
    elif match := _TEXT_ERROR.search(stderr):
        message = match["message"]
        code = "DAEMON_NOT_RUNNING" if message.startswith(_CONNECT_FAILURE) else text_code
    else:
        code = text_code
        message = stderr.splitlines()[-1] if stderr else f"paseo exited {result.exit_status}"
    return PaseoError(code, message, exit_status=result.exit_status, stderr=result.stderr)


def _json_error(stderr: str) -> tuple[str, str, object] | None:
    """The `{"error": {...}}` object on stderr, wherever it starts: lines the CLI prints
    before it (a deprecation warning, `Created workspace ...`) are not part of the error."""
    decoder = json.JSONDecoder()
    for start in _object_starts(stderr):
        try:
            body, _ = decoder.raw_decode(stderr, start)
        except json.JSONDecodeError:
            continue
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            return error["code"], str(error.get("message", "")), error.get("details")
    return None


def _object_starts(text: str) -> list[int]:
    """Where a JSON object may begin: each line that starts with `{`, else the first `{`."""
    starts = [match.start() for match in _LINE_OBJECT.finditer(text)]
    first = text.find("{")
    return starts or ([first] if first >= 0 else [])


def check(result: CliResult, *, text_code: str = "CLI_FAILED") -> CliResult:
    """Raise the CLI's error unless it exited 0."""
    if result.exit_status != 0:
        raise error_from_result(result, text_code=text_code)
    return result


def parse_json(result: CliResult, model: type[ModelT]) -> ModelT:
    """One JSON object printed on stdout by a call that exited 0."""
    check(result)
    try:
        return model.model_validate_json(result.stdout)
    except ValidationError as exc:
        raise bad_output(result, exc) from exc


def parse_json_list(result: CliResult, model: type[ModelT]) -> list[ModelT]:
    """A JSON array printed on stdout (list results are always arrays)."""
    check(result)
    try:
        return TypeAdapter(list[model]).validate_json(result.stdout)  # type: ignore[valid-type]
    except ValidationError as exc:
        raise bad_output(result, exc) from exc


def bad_output(result: CliResult, exc: Exception) -> PaseoError:
    command = " ".join(result.args[:2])
    return PaseoError(
        "BAD_OUTPUT",
        f"could not parse the output of `paseo {command}`: {exc.__class__.__name__}",
        exit_status=result.exit_status,
        stderr=result.stderr,
        details=result.stdout[:2000],
    )
