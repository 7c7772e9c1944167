"""Which providers the daemon offers, asked at most every few seconds (a CLI call costs 1-4 s).

A new session names its provider; checking it at `POST /sessions` means a bad one is refused
there (422), not by the session's first prompt after it was created. The cached answer is
only a convenience: a provider that goes away later still fails the prompt with Paseo's word.
"""

from __future__ import annotations

import asyncio
import time

from app.errors import InvalidInput
from app.paseo.client import PaseoClient
from app.paseo.types import ProviderInfo

# How long one answer of the daemon serves new sessions.
PROVIDERS_FRESH_SECONDS = 10.0


async def daemon_providers(paseo: PaseoClient) -> list[ProviderInfo]:
    """The daemon's providers, asked now; raises `PaseoError` (503) when the daemon is down.

    With the daemon down `provider ls` prints a static list and exits 0, so `ls` is asked
    as well.
    """
    _, providers = await asyncio.gather(paseo.ping(), paseo.list_providers())
    return providers


class ProviderCatalog:
    def __init__(self, paseo: PaseoClient, fresh_seconds: float = PROVIDERS_FRESH_SECONDS) -> None:
        self.paseo = paseo
        self.fresh_seconds = fresh_seconds
        self._known: list[ProviderInfo] | None = None
        self._asked_at = 0.0
        self._lock = asyncio.Lock()

    async def providers(self) -> list[ProviderInfo]:
        """`daemon_providers`, asked at most every `fresh_seconds`."""
        async with self._lock:
            fresh = time.monotonic() - self._asked_at <= self.fresh_seconds
            if self._known is not None and fresh:
                return self._known
            known = await daemon_providers(self.paseo)
            self._known, self._asked_at = known, time.monotonic()
            return known

    async def check(self, provider: str) -> None:
        """Refuse a provider the daemon does not have, or has but cannot run."""
        known = {info.provider: info for info in await self.providers()}
        info = known.get(provider)
        if info is None:
            names = ", ".join(sorted(known)) or "none"
            raise InvalidInput(
                f"unknown provider {provider!r}; the daemon has: {names}", field="provider"
            )
        if not info.usable:
            state = info.status if info.enabled else f"{info.status}, disabled"
            raise InvalidInput(
                f"provider {provider!r} is {state} on the daemon; pick another or fix it there",
                field="provider",
            )
