"""The keys this process has just seen, trusted for a moment so a read is one query, not two.

Every request used to read its key's row. A key seen valid is now trusted for `ttl` seconds
(`PASEO_GATEWAY_KEY_CACHE_SECONDS`, 1 s by default; 0 turns it off): a revoke made through this
process forgets the key at once, and one made elsewhere (another replica, `paseo-gateway keys
revoke`) takes effect within `ttl`. Unknown and revoked keys are never kept, so a key created
anywhere works at once and a refusal is always fresh.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

ValueT = TypeVar("ValueT")

DEFAULT_MAX_KEYS = 10_000


@dataclass(frozen=True)
class _Entry(Generic[ValueT]):
    key_id: uuid.UUID | None
    value: ValueT
    until: float


class KeyCache(Generic[ValueT]):
    """Values of valid keys by their secret's hash, each for `ttl` seconds; least recently
    used first out once `max_keys` are held."""

    def __init__(
        self,
        ttl: float,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_keys = max_keys
        self.clock = clock
        self._entries: OrderedDict[str, _Entry[ValueT]] = OrderedDict()

    def get(self, secret_hash: str) -> ValueT | None:
        entry = self._entries.get(secret_hash)
        if entry is None:
            return None
        if entry.until <= self.clock():
            del self._entries[secret_hash]
            return None
        self._entries.move_to_end(secret_hash)
        return entry.value

    def put(self, secret_hash: str, key_id: uuid.UUID | None, value: ValueT) -> None:
        if self.ttl <= 0:
            return
        self._entries[secret_hash] = _Entry(key_id, value, self.clock() + self.ttl)
        self._entries.move_to_end(secret_hash)
        while len(self._entries) > self.max_keys:
            self._entries.popitem(last=False)

    def forget(self, key_id: uuid.UUID) -> None:
        """Drop the key `key_id` (revoked): its next request reads its row again."""
        stale = [name for name, entry in self._entries.items() if entry.key_id == key_id]
        for name in stale:
            del self._entries[name]
