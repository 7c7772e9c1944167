"""The key cache alone: what it keeps, for how long, and what a revoke drops."""

from __future__ import annotations

import uuid

from app.services.key_cache import KeyCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_trusted_for_its_time_and_then_read_again() -> None:
    clock = Clock()
    cache: KeyCache[str] = KeyCache(1.0, clock=clock)
    cache.put("hash-a", uuid.uuid4(), "alice")

    clock.now += 0.99
    assert cache.get("hash-a") == "alice"
    clock.now += 0.01
    assert cache.get("hash-a") is None


def test_forgetting_a_key_drops_it_at_once() -> None:
    cache: KeyCache[str] = KeyCache(60.0, clock=Clock())
    revoked, kept = uuid.uuid4(), uuid.uuid4()
    cache.put("hash-a", revoked, "alice")
    cache.put("hash-b", kept, "bob")

    cache.forget(revoked)

    assert cache.get("hash-a") is None
    assert cache.get("hash-b") == "bob"


def test_no_time_keeps_nothing() -> None:
    cache: KeyCache[str] = KeyCache(0.0, clock=Clock())
    cache.put("hash-a", uuid.uuid4(), "alice")
    assert cache.get("hash-a") is None


def test_the_least_recently_used_key_goes_first_when_full() -> None:
    cache: KeyCache[str] = KeyCache(60.0, max_keys=2, clock=Clock())
    cache.put("hash-a", uuid.uuid4(), "alice")
    cache.put("hash-b", uuid.uuid4(), "bob")
    assert cache.get("hash-a") == "alice"  # now b is the least recently used

    cache.put("hash-c", uuid.uuid4(), "carol")

    assert (cache.get("hash-a"), cache.get("hash-b"), cache.get("hash-c")) == (
        "alice",
        None,
        "carol",
    )
