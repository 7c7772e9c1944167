"""Which providers the daemon offers, asked at most every few seconds (a CLI call costs 1-4 s).

A new session names its provider; checking it at `POST /sessions` means a bad one is refused
there (422), not by the session's first prompt after it was created. The cached answer is
only a convenience: a provider that goes away later still fails the prompt with Paseo's word.
"""

from __future__ import annotations

import asyncio
import logging
import time

from app.errors import InvalidInput, ModelNotFound
from app.paseo.client import PaseoClient
from app.paseo.errors import PaseoError, PaseoErrorKind
from app.paseo.types import ModelInfo, ProviderInfo
from app.services.daemons import Daemons

logger = logging.getLogger(__name__)

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
        # provider -> (its models, when they were asked for)
        self._models: dict[str, tuple[list[ModelInfo], float]] = {}
        self._models_lock = asyncio.Lock()

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

    async def models(self, provider: str) -> list[ModelInfo]:
        """`provider`'s models, asked at most every `fresh_seconds`."""
        async with self._models_lock:
            known = self._models.get(provider)
            if known is not None and time.monotonic() - known[1] <= self.fresh_seconds:
                return known[0]
        models = await self.paseo.list_models(provider)
        async with self._models_lock:
            self._models[provider] = (models, time.monotonic())
        return models

    async def all_models(self) -> list[ModelInfo]:
        """Every model of every provider that can run agents now. A provider whose models
        cannot be listed is left out (and logged); the daemon being down raises."""
        usable = [info.provider for info in await self.providers() if info.usable]
        listed = await asyncio.gather(
            *(self.models(provider) for provider in usable), return_exceptions=True
        )
        models: list[ModelInfo] = []
        for provider, result in zip(usable, listed, strict=True):
            if isinstance(result, PaseoError) and result.kind != PaseoErrorKind.UNAVAILABLE:
                logger.warning("could not list the models of %s: %s", provider, result)
            elif isinstance(result, BaseException):
                raise result
            else:
                models += result
        return models

    async def check_model(self, provider: str, model: str | None) -> None:
        """Refuse a model id that names no model the daemon offers (`None`: the provider's
        default, which only needs the provider)."""
        named = f"{provider}/{model}" if model else provider
        try:
            await self.check(provider)
        except InvalidInput as exc:
            raise ModelNotFound(f"no model {named!r}: {exc.detail}", field="model") from None
        if model is None:
            return
        ids = [known.id for known in await self.models(provider)]
        if model not in ids:
            offered = ", ".join(f"{provider}/{known}" for known in ids) or "none"
            raise ModelNotFound(f"no model {named!r}; {provider} offers: {offered}", field="model")


class Catalogs:
    """One `ProviderCatalog` per daemon (each daemon has providers and models of its own)."""

    def __init__(self, daemons: Daemons, fresh_seconds: float = PROVIDERS_FRESH_SECONDS) -> None:
        self.daemons = daemons
        self._catalogs = {daemon.name: ProviderCatalog(daemon, fresh_seconds) for daemon in daemons}

    def of(self, daemon: str) -> ProviderCatalog:
        self.daemons.get(daemon)  # 422 for a daemon this gateway does not serve
        return self._catalogs[daemon]

    async def all_models(self) -> list[ModelInfo]:
        """Every model any daemon that answers offers, each id once (in daemon order). Raises
        only when no daemon answers."""
        listed = await asyncio.gather(
            *(catalog.all_models() for catalog in self._catalogs.values()), return_exceptions=True
        )
        answered = [result for result in listed if not isinstance(result, BaseException)]
        if not answered:
            failure = listed[0]
            assert isinstance(failure, BaseException)
            raise failure
        models: dict[str, ModelInfo] = {}
        for result in answered:
            for model in result:
                models.setdefault(f"{model.provider}/{model.id}", model)
        return list(models.values())
