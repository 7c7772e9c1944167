"""The pure parts of the event fan-out: what a reader's subscription says to do next, and the
NOTIFY payload."""

from __future__ import annotations

import uuid

from app.repositories.event_channel import parse_notice
from app.services.turn.events import StoredEvent, Subscription, in_order

TURN = uuid.UUID(int=7)


def _event(seq: int) -> StoredEvent:
    return StoredEvent(seq, "text", {"delta": str(seq)})


def test_a_new_subscription_reads_storage_first() -> None:
    subscription = Subscription(TURN)
    assert subscription.must_read(0)
    assert not subscription.must_read(0)  # the mark is cleared by asking


def test_stored_notices_matter_only_beyond_the_readers_position() -> None:
    subscription = Subscription(TURN)
    subscription.must_read(0)
    subscription.stored(5)
    assert not subscription.must_read(5)  # already seen live
    assert subscription.must_read(4)
    subscription.stored(None)
    assert subscription.must_read(9)


def test_live_events_already_seen_are_dropped() -> None:
    subscription = Subscription(TURN)
    subscription.push([_event(3), _event(4)])
    subscription.push([_event(5)])
    assert subscription.wakeup.is_set()
    next_live = subscription.next_live(3)
    assert next_live is not None and next_live.seq == 4
    assert [e.seq for e in subscription.live] == [4, 5]
    assert subscription.next_live(5) is None


def test_events_pushed_out_of_order_are_put_in_order_once() -> None:
    subscription = Subscription(TURN)
    subscription.push([_event(2), _event(4)])
    subscription.push([_event(3), _event(4)])
    assert [e.seq for e in subscription.live] == [2, 3, 4]
    assert [e.seq for e in in_order([_event(9), _event(1), _event(9)])] == [1, 9]


def test_notice_payloads() -> None:
    assert parse_notice(f"{TURN}:12") == (TURN, 12)
    assert parse_notice("nonsense") is None
    assert parse_notice(f"{TURN}:x") is None
