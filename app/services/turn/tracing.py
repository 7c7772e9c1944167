"""One span per turn's run, from its start (or its recovery) to its stored end.

The span is current in the run's task, so the Paseo calls and the statements of the turn are
its children; the request that started the turn, if traced, is its parent. Its final status
is read from the run when the span ends: whatever way the run stopped, that is what it stored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from app.models import TurnStatus
from app.services.turn.run import TurnRun

TURN_SPAN = "paseo_gateway.turn"
TURN_ID = "paseo_gateway.turn_id"
SESSION_ID = "paseo_gateway.session_id"
DAEMON = "paseo_gateway.daemon"
STATUS = "paseo_gateway.turn.status"
ERROR_CODE = "paseo_gateway.turn.error_code"
_ERROR_STATUSES = (TurnStatus.FAILED, TurnStatus.TIMED_OUT)


@contextlib.contextmanager
def turn_span(run: TurnRun) -> Iterator[None]:
    """The turn's span around its run; a turn that failed marks it as an error."""
    attributes = {
        TURN_ID: str(run.turn_id),
        SESSION_ID: str(run.turn.session_id),
        DAEMON: run.daemon,
    }
    tracer = trace.get_tracer(__name__)
    with tracer.start_as_current_span(TURN_SPAN, attributes=attributes) as span:
        try:
            yield
        finally:
            if span.is_recording():
                _record_ending(span, run)


def _record_ending(span: trace.Span, run: TurnRun) -> None:
    """A cancel or a replacing prompt is someone's choice, not an error: only a turn that
    failed or ran out of time marks its span as one."""
    turn = run.turn
    span.set_attribute(STATUS, str(turn.status))
    if turn.error_code:
        span.set_attribute(ERROR_CODE, turn.error_code)
    if turn.status in _ERROR_STATUSES:
        span.set_status(Status(StatusCode.ERROR, turn.error_code or str(turn.status)))
