"""The daemon transport's pure parts: host forms, message mapping, timelines, and how a
follower reads one turn out of an agent's stream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.paseo.daemon import wire
from app.paseo.daemon.client import _Turn
from app.paseo.daemon.protocol import Feature, protocol_of, version_note
from app.paseo.daemon.target import BadDaemonHost, DaemonTarget, parse_host, resolve_target
from app.paseo.daemon.timeline import (
    format_cursor,
    parse_cursor,
    prompt_history,
    rows_of,
    turn_so_far,
)
from app.paseo.types import (
    AgentNotice,
    PermissionRequested,
    PermissionResolved,
    PromptDelivered,
    PromptSteered,
    TextDelta,
    ToolActivity,
    TurnEnded,
)


@pytest.mark.parametrize(
    ("host", "target"),
    [
        ("127.0.0.1:6767", DaemonTarget("ws://127.0.0.1:6767/ws")),
        ("tcp://box:7000", DaemonTarget("ws://box:7000/ws")),
        ("tcp://box:7000?ssl=true", DaemonTarget("wss://box:7000/ws")),
        ("tcp://[::1]:6767?password=p%21w", DaemonTarget("ws://[::1]:6767/ws", password="p!w")),
        ("unix:///run/paseo.sock", DaemonTarget("ws://localhost/ws", "/run/paseo.sock")),
    ],
)
def test_host_forms(host: str, target: DaemonTarget) -> None:
    assert parse_host(host) == target


@pytest.mark.parametrize(
    "host", ["7777", "unix://relative.sock", "tcp://box", "tcp://u:p@box:1", "http://box:1"]
)
def test_bad_host_forms_are_refused_with_the_forms(host: str) -> None:
    with pytest.raises(BadDaemonHost):
        parse_host(host)


def test_a_target_never_describes_its_password() -> None:
    assert "secret" not in parse_host("tcp://box:1?password=secret").describe()


def test_without_a_host_the_cli_defaults_apply(tmp_path: Path) -> None:
    assert resolve_target(None, tmp_path, {}).url == "ws://localhost:6767/ws"
    (tmp_path / "config.json").write_text('{"daemon": {"listen": "127.0.0.1:7001"}}')
    assert resolve_target(None, tmp_path, {}).url == "ws://127.0.0.1:7001/ws"
    listen = {"PASEO_LISTEN": "/tmp/d.sock"}
    assert resolve_target(None, tmp_path, listen).unix_path == "/tmp/d.sock"
    assert resolve_target("box:1", tmp_path, listen).url == "ws://box:1/ws"


SNAPSHOT: dict[str, Any] = {
    "id": "a1",
    "provider": "mock",
    "cwd": "/work/p",
    "model": "ten-second-stream",
    "status": "idle",
    "title": None,
    "labels": {"paseo.worktree": "wt"},
    "createdAt": "2026-12-01T10:00:00.000Z",
    "updatedAt": "2026-12-01T10:05:00.000Z",
    "archivedAt": None,
    "capabilities": {"supportsStreaming": True, "supportsSessionPersistence": False},
    "currentModeId": None,
    "availableModes": [{"id": "load-test", "label": "Load test"}],
    "pendingPermissions": [{"id": "p1", "name": "plan", "kind": "plan"}],
    "lastUsage": {"inputTokens": 3, "outputTokens": 5, "cachedInputTokens": 1},
}


def test_a_snapshot_in_the_gateways_terms() -> None:
    summary = wire.agent_summary(SNAPSHOT)
    assert (summary.provider, summary.model, summary.thinking) == (
        "mock",
        "ten-second-stream",
        "auto",
    )
    assert summary.title is None and summary.created_at is not None
    assert summary.created_at.isoformat() == "2026-12-01T10:00:00+00:00"
    detail = wire.agent_detail(SNAPSHOT)
    assert detail.archived is False and detail.mode == "default" and detail.worktree == "wt"
    assert detail.pending_permissions[0].tool == "plan"
    assert detail.last_usage is not None and detail.last_usage.cached_tokens == 1
    assert detail.capabilities is not None and detail.capabilities.streaming


def test_usage_keeps_the_cost_and_the_context_window_paseo_reports() -> None:
    reported = wire.usage(
        {
            "inputTokens": 1,
            "outputTokens": 3,
            "cachedInputTokens": 0,
            "totalCostUsd": 0.0125,
            "contextWindowUsedTokens": 3,
            "contextWindowMaxTokens": 128000,
        }
    )
    assert reported is not None and reported.model_dump() == {
        "input_tokens": 1,
        "output_tokens": 3,
        "cached_tokens": 0,
        "cost_usd": 0.0125,
        "context_window_used_tokens": 3,
        "context_window_max_tokens": 128000,
    }
    # Not reported (the CLI's `inspect` never does): left out of what is stored.
    plain = wire.usage({"outputTokens": 2})
    assert plain is not None and plain.model_dump() == {
        "input_tokens": None,
        "output_tokens": 2,
        "cached_tokens": None,
        "cost_usd": None,
    }


def test_a_provider_entry_in_the_gateways_terms() -> None:
    info = wire.provider_info(
        {"provider": "mock", "status": "ready", "modes": [{"id": "x", "label": "X"}]}
    )
    modes = [(mode.id, mode.label) for mode in info.modes]
    assert (info.label, info.enabled, modes, info.usable) == ("mock", True, [("x", "X")], True)
    off = wire.provider_info({"provider": "pi", "status": "ready", "enabled": False})
    assert not off.usable


def test_versions_outside_the_checked_releases_are_a_warning() -> None:
    assert version_note("0.1.65-beta.5") is None
    assert version_note("0.5.0-beta.4") is None
    assert "0.2.0" in (version_note("0.2.0") or "")
    assert version_note(None) is not None


@pytest.mark.parametrize(
    ("server_info", "delivery", "steering"),
    [
        ({"version": "0.1.65-beta.5", "features": {"providersSnapshot": True}}, "legacy", False),
        ({"version": "0.2.0-beta.2"}, "selective", False),
        (
            {"version": "0.5.0-beta.4", "features": {"selectiveAgentTimeline": True}},
            "selective",
            True,
        ),
        ({"version": "0.11.0-beta.5", "features": {"ownedSubscriptions": True}}, "owned", True),
        # A flag says it even where the version does not (or is not given) ...
        ({"features": {"ownedSubscriptions": True}}, "owned", False),
        # ... and a version says it after the flag's gate was dropped.
        ({"version": "0.12.0", "features": {}}, "owned", True),
        ({"version": "not-a-version"}, "legacy", False),
    ],
)
def test_what_a_daemon_can_do_comes_from_its_server_info(
    server_info: dict[str, Any], delivery: str, steering: bool
) -> None:
    protocol = protocol_of(server_info)
    assert protocol.delivery.name.lower() == delivery
    assert protocol.has(Feature.STEERING) is steering


def test_the_hello_declares_what_the_gateway_handles_and_carries_the_password() -> None:
    hello = wire.hello("gw_1", "s3cret")
    assert hello["protocolVersion"] == 1
    for capability in ("owned_subscriptions", "selective_agent_timeline", "hello_rejection"):
        assert hello["capabilities"][capability] is True
    assert hello["auth"] == {"kind": "password", "password": "s3cret"}
    assert "auth" not in wire.hello("gw_1")


def test_a_password_http_cannot_carry_verbatim_goes_as_hex() -> None:
    assert wire.bearer_subprotocol("s3cret-1") == "paseo.bearer.s3cret-1"
    assert wire.bearer_subprotocol("p w@/x") == "paseo.bearer-hex." + b"p w@/x".hex()


def _event(kind: str, seq: int | None = None, **fields: Any) -> wire.StreamEvent:
    return wire.StreamEvent("a1", {"type": kind, **fields}, epoch="E" if seq else None, seq=seq)


def _text(seq: int, text: str) -> wire.StreamEvent:
    return _event("timeline", seq, item={"type": "assistant_message", "text": text})


def _prompt(seq: int, message_id: str, text: str = "hi") -> wire.StreamEvent:
    return _event(
        "timeline", seq, item={"type": "user_message", "text": text, "messageId": message_id}
    )


def _take_all(turn: _Turn, events: list[wire.StreamEvent]) -> list[object]:
    return [out for event in events for out in turn.take(event)]


def test_a_turn_is_what_follows_its_own_prompt_and_start() -> None:
    turn = _Turn(message_id="m2")
    events = [
        _text(1, "old turn text"),  # before our prompt: another turn's
        _prompt(2, "m2"),
        _event("turn_canceled", reason="Interrupted"),  # the replaced turn ends after it
        _event("turn_started"),
        _text(3, "Hello"),
        _event("timeline", 4, item={"type": "tool_call", "name": "read", "status": "running"}),
        _text(5, " world"),
        _event("turn_completed", usage={"outputTokens": 2}),
    ]
    out = _take_all(turn, events)
    assert out[0] == PromptDelivered()
    assert out[1:4] == [  # each with its timeline position, to resume after it
        TextDelta("Hello", "timeline:E:3"),
        ToolActivity("read", "running", kind="read", cursor="timeline:E:4"),
        TextDelta(" world", "timeline:E:5"),
    ]
    ended = out[-1]
    assert isinstance(ended, TurnEnded) and ended.outcome == "completed"
    assert ended.final_text == "Hello world" and ended.usage is not None


def test_a_turn_that_starts_before_its_prompt_is_recorded_is_followed() -> None:
    """Paseo 0.5+ starts the turn, then records the prompt, both with the turn's id."""
    turn = _Turn(message_id="m2")
    events = [
        _event("turn_started", turnId="t1"),  # an earlier turn: its prompt is not ours
        _prompt(1, "m1"),
        _event("turn_completed", turnId="t1"),
        _event("turn_started", turnId="t2"),
        _event(
            "timeline",
            2,
            turnId="t2",
            item={"type": "user_message", "text": "hi", "messageId": "m2"},
        ),
        _event("timeline", 3, turnId="t2", item={"type": "assistant_message", "text": "Hello"}),
        _event("turn_completed", turnId="t2"),
    ]
    out = _take_all(turn, events)
    assert out[:2] == [PromptDelivered(), TextDelta("Hello", "timeline:E:3")]
    ended = out[-1]
    assert isinstance(ended, TurnEnded) and ended.final_text == "Hello"


def test_a_prompt_recorded_inside_the_turn_steers_it_and_one_in_another_turn_does_not() -> None:
    turn = _Turn(message_id="m1", delivered=True, started=True, turn_id="t1")
    steer = {"type": "user_message", "text": "also add tests", "messageId": "m2"}
    out = _take_all(
        turn,
        [
            _event("timeline", 1, turnId="t1", item=steer),
            _event("timeline", 2, turnId="t1", item={"type": "assistant_message", "text": "ok"}),
            # A replacement: our turn is cancelled, the next one's events are not ours.
            _event("turn_canceled", turnId="t1", reason="Interrupted"),
        ],
    )
    assert out[0] == PromptSteered("also add tests", "timeline:E:1")
    assert out[1] == TextDelta("ok", "timeline:E:2")
    assert isinstance(out[2], TurnEnded) and out[2].outcome == "interrupted"
    other = _Turn(message_id="m1", delivered=True, started=True, turn_id="t1")
    assert other.take(_event("timeline", 5, turnId="t9", item=steer)) == []
    legacy = _Turn(message_id="m1", delivered=True, started=True)  # 0.1: no turn ids
    assert legacy.take(_event("timeline", 6, item=steer)) == []


def test_a_replayed_row_is_taken_once() -> None:
    turn = _Turn(delivered=True, started=True, epoch="E", seq=3)
    assert _take_all(turn, [_text(2, "seen"), _text(3, "seen"), _text(4, "new")]) == [
        TextDelta("new", "timeline:E:4")
    ]


@pytest.mark.parametrize(
    ("event", "outcome"),
    [
        (_event("turn_failed", error="boom"), "error"),
        (_event("turn_canceled", reason="Interrupted"), "interrupted"),
    ],
)
def test_each_way_a_turn_ends(event: wire.StreamEvent, outcome: str) -> None:
    turn = _Turn(delivered=True, started=True)
    out = turn.take(event)
    ended = out[-1]
    assert isinstance(ended, TurnEnded) and ended.outcome == outcome
    if outcome != "interrupted":
        assert isinstance(out[0], AgentNotice)


def test_a_permission_request_is_an_event_not_an_ending() -> None:
    """As the real daemon streams it: the request, the turn's end, then the resolution."""
    turn = _Turn(delivered=True, started=True)
    request = {
        "id": "mock-plan-1",
        "name": "MockPlanApproval",
        "kind": "plan",
        "title": "Plan",
        "input": {"plan": "1. do it"},
        "actions": [
            {"id": "implement", "label": "Implement", "behavior": "allow"},
            {"id": "odd", "label": "Odd", "behavior": "maybe"},  # not an answer: left out
        ],
    }
    [asked] = turn.take(_event("permission_requested", request=request))
    assert isinstance(asked, PermissionRequested)
    assert (asked.request.id, asked.request.kind, asked.request.input) == (
        "mock-plan-1",
        "plan",
        {"plan": "1. do it"},
    )
    assert [a.id for a in asked.request.actions] == ["implement"]
    ended = turn.take(_event("turn_completed"))
    assert isinstance(ended[-1], TurnEnded) and ended[-1].outcome == "completed"
    resolved = _event(
        "permission_resolved", requestId="mock-plan-1", resolution={"behavior": "deny"}
    )
    assert turn.take(resolved) == [PermissionResolved("mock-plan-1", "deny")]


def _rows(*items: dict[str, Any]) -> list[Any]:
    return rows_of([{"seqStart": n, "seqEnd": n, "item": item} for n, item in enumerate(items, 1)])


def test_prompt_history_from_the_timeline() -> None:
    rows = _rows(
        {"type": "user_message", "text": "hi"},
        {"type": "assistant_message", "text": "one"},
        {"type": "user_message", "text": "hi"},
        {"type": "assistant_message", "text": "two"},
        {"type": "assistant_message", "text": " more"},
    )
    history = prompt_history(rows, "  hi\n")  # Paseo records it trimmed
    assert (history.times_recorded, history.latest_is_this_prompt) == (2, True)
    assert not prompt_history(rows, "other").latest_is_this_prompt
    so_far = turn_so_far(rows, "hi")
    assert (so_far.found, so_far.prompt_seq, so_far.last_seq) == (True, 3, 5)
    assert [row.seq for row in so_far.rows] == [4, 5]
    assert not turn_so_far(rows, "other").found


def test_a_prompt_with_a_key_is_found_by_its_key_not_its_text() -> None:
    rows = _rows(
        {"type": "user_message", "text": "hi", "messageId": "turn-1"},
        {"type": "assistant_message", "text": "one"},
        {"type": "user_message", "text": "hi", "messageId": "turn-2"},
        {"type": "assistant_message", "text": "two"},
    )
    second = prompt_history(rows, "hi", "turn-2")
    assert (second.times_recorded, second.latest_is_this_prompt) == (1, True)
    assert second.by_turn_key
    first = prompt_history(rows, "hi", "turn-1")  # same text, but not the latest turn
    assert (first.times_recorded, first.latest_is_this_prompt) == (1, False)
    assert prompt_history(rows, "hi", "turn-3").times_recorded == 0  # never reached Paseo
    assert turn_so_far(rows, "hi", "turn-2").prompt_seq == 3
    assert not turn_so_far(rows, "hi", "turn-1").found


def test_a_cursor_is_the_timeline_position_and_only_this_transports() -> None:
    cursor = format_cursor("epoch:with:colons", 42)
    assert parse_cursor(cursor) == ("epoch:with:colons", 42)
    assert parse_cursor(None) is None
    assert parse_cursor("text:12") is None  # the CLI transport's
    assert parse_cursor("timeline:no-seq") is None
    assert parse_cursor("timeline:epoch:") is None
