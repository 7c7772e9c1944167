"""Log lines say which session and turn they are about, in both formats."""

from __future__ import annotations

import json
import logging

from app.logs import TEXT_FORMAT, ContextFilter, JsonFormatter, turn_log_context


def _record(message: str) -> logging.LogRecord:
    record = logging.LogRecord("app.test", logging.INFO, __file__, 1, message, (), None)
    assert ContextFilter().filter(record)
    return record


def test_text_lines_inside_a_turn_carry_its_session_and_turn() -> None:
    token = turn_log_context.set((("session_id", "s-1"), ("turn_id", "t-1")))
    try:
        line = logging.Formatter(TEXT_FORMAT).format(_record("turn ended: failed"))
    finally:
        turn_log_context.reset(token)
    assert line.endswith("[-] session=s-1 turn=t-1 turn ended: failed")


def test_text_lines_outside_a_turn_have_no_empty_ids() -> None:
    line = logging.Formatter(TEXT_FORMAT).format(_record("hello"))
    assert line.endswith("[-] hello") and "session=" not in line


def test_json_lines_inside_a_turn_carry_its_ids() -> None:
    token = turn_log_context.set((("session_id", "s-2"), ("turn_id", "t-2")))
    try:
        entry = json.loads(JsonFormatter().format(_record("x")))
    finally:
        turn_log_context.reset(token)
    assert (entry["session_id"], entry["turn_id"]) == ("s-2", "t-2")
