"""Which providers the daemon offers, with their models and modes, asked at most every few
seconds (a CLI call costs 1-4 s).

A new session names its provider, model and mode; checking them at `POST /sessions` (and a
mode at `PATCH`) means a bad one is refused there (422, naming the choices), not by the
session's first prompt after it was created. The cached answer is only a convenience: a
provider that goes away later still fails the prompt with Paseo's word. What is allowed is
decided by `decide_model` and `decide_mode`, pure functions of what the daemon listed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from app.errors import InvalidInput, ProviderNotReady, UnknownMode, UnknownModel
from app.paseo.client import PaseoClient
from app.paseo.errors import PaseoError, PaseoErrorKind
from app.paseo.types import ModelInfo, ProviderInfo
from app.services.daemons import Daemons

logger = logging.getLogger(__name__)

# How long one answer of the daemon serves new sessions.
PROVIDERS_FRESH_SECONDS = 10.0
# An answer with a provider still loading is asked again sooner: it is ready within seconds.
LOADING_FRESH_SECONDS = 1.0
# A provider's models change only when it is updated or reconfigured; a model missing from an
# answer older than PROVIDERS_FRESH_SECONDS is asked for again before it is refused.
MODELS_FRESH_SECONDS = 60.0
# What a 503 for a provider whose lists are not ready tells the client to wait (Paseo's
# providers load 3-5 s after the daemon starts).
NOT_READY_RETRY_AFTER_SECONDS = 5


def decide_model(info: ProviderInfo, model: str, listed: Sequence[ModelInfo] | None) -> None:
    """Refuse `model` unless `info`'s provider lists it. `listed`: its models, or `None` when
    they could not be read; a provider still loading may list none yet (503, retry)."""
    ids = [known.id for known in listed or ()]
    if model in ids:
        return
    if listed is None or (not ids and info.status == "loading"):
        raise _not_ready(f"the models of provider {info.provider!r} cannot be listed yet")
    offered = ", ".join(ids) if ids else "none (leave `model` out for its default)"
    raise UnknownModel(
        f"provider {info.provider!r} has no model {model!r}; it lists: {offered}",
        field="model",
        models=ids,
    )


def decide_mode(info: ProviderInfo, mode: str) -> None:
    """Refuse `mode` unless it is the id of one of `info`'s modes. A provider that lists no
    modes (pi; a custom one whose modes come at run time) is not held to a list, nor is one
    whose ids are not all known (an older CLI printed a custom provider's labels alone)."""
    if not info.modes:
        if info.status == "loading":
            raise _not_ready(f"the modes of provider {info.provider!r} cannot be listed yet")
        return
    if any(known.id is None for known in info.modes):
        return
    modes = [(known.id or "", known.label) for known in info.modes]
    refuse_mode(mode, modes, f"provider {info.provider!r}")


def refuse_mode(mode: str, modes: Sequence[tuple[str, str]], whose: str) -> None:
    """422 unless `mode` is one of the `(id, label)` `modes`; the answer names the ids (and
    the id of a label sent instead)."""
    ids = [mode_id for mode_id, _ in modes]
    if mode in ids:
        return
    by_label = {label: mode_id for mode_id, label in modes}
    hint = f" ({mode!r} is the label of {by_label[mode]!r})" if mode in by_label else ""
    raise UnknownMode(
        f"{whose} has no mode {mode!r}{hint}; send one of the ids: {', '.join(ids)}",
        field="mode",
        modes=ids,
    )


def _not_ready(what: str) -> ProviderNotReady:
    return ProviderNotReady(
        f"{what}: the provider is still loading on the daemon, or its list failed; retry "
        f"in {NOT_READY_RETRY_AFTER_SECONDS} s",
        headers={"Retry-After": str(NOT_READY_RETRY_AFTER_SECONDS)},
    )


async def daemon_providers(paseo: PaseoClient) -> list[ProviderInfo]:
    """The daemon's providers, asked now; raises `PaseoError` (503) when the daemon is down.

    With the daemon down `provider ls` prints a static list and exits 0, so `ls` is asked
    as well.
    """
    _, providers = await asyncio.gather(paseo.ping(), paseo.list_providers())
    return providers


class ProviderCatalog:
    def __init__(
        self,
        paseo: PaseoClient,
        fresh_seconds: float = PROVIDERS_FRESH_SECONDS,
        models_fresh_seconds: float = MODELS_FRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.paseo = paseo
        self.clock = clock
        self.fresh_seconds = fresh_seconds
        self.models_fresh_seconds = models_fresh_seconds
        self._known: list[ProviderInfo] | None = None
        self._known_until = 0.0
        self._lock = asyncio.Lock()
        # provider -> (its models, when they were asked for); one asks per provider at a time.
        self._models: dict[str, tuple[list[ModelInfo], float]] = {}
        self._models_locks: dict[str, asyncio.Lock] = {}

    async def providers(self) -> list[ProviderInfo]:
        """`daemon_providers`, asked at most every `fresh_seconds` (every second while one
        provider is still loading)."""
        async with self._lock:
            if self._known is not None and self.clock() < self._known_until:
                return self._known
            known = await daemon_providers(self.paseo)
            loading = any(info.status == "loading" for info in known)
            fresh = (
                min(LOADING_FRESH_SECONDS, self.fresh_seconds) if loading else self.fresh_seconds
            )
            self._known, self._known_until = known, self.clock() + fresh
            return known

    async def info(self, provider: str) -> ProviderInfo | None:
        """What the daemon says of `provider` (`None`: it does not have it)."""
        return next((info for info in await self.providers() if info.provider == provider), None)

    async def check(self, provider: str) -> ProviderInfo:
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
        return info

    async def models(self, provider: str, max_age: float | None = None) -> list[ModelInfo]:
        """`provider`'s models, asked again when the last answer is older than `max_age`
        (default `models_fresh_seconds`). An empty answer is not kept (loading)."""
        max_age = self.models_fresh_seconds if max_age is None else max_age
        async with self._models_locks.setdefault(provider, asyncio.Lock()):
            known = self._models.get(provider)
            if known is not None and self.clock() - known[1] <= max_age:
                return known[0]
            models = await self.paseo.list_models(provider)
            if models:
                self._models[provider] = (models, self.clock())
            return models

    async def check_model(self, provider: str, model: str) -> None:
        """Refuse a provider that cannot run agents, or a model it does not list (422; 503
        while its models cannot be listed). A model missing from an answer older than
        `fresh_seconds` is asked for again first (it may have been added since)."""
        info = await self.check(provider)
        try:
            decide_model(info, model, await self._listed(provider))
        except UnknownModel:
            decide_model(info, model, await self._listed(provider, self.fresh_seconds))

    async def check_mode(self, provider: str, mode: str) -> None:
        """Refuse a mode that is not one of `provider`'s (see `decide_mode`). A provider the
        daemon no longer has is left to the session's first prompt, which fails with it."""
        info = await self.info(provider)
        if info is not None:
            decide_mode(info, mode)

    async def _listed(self, provider: str, max_age: float | None = None) -> list[ModelInfo] | None:
        """`models`, or `None` when the daemon answered but could not list them (a daemon
        that is down still raises: 503 `daemon_not_running`)."""
        try:
            return await self.models(provider, max_age)
        except PaseoError as exc:
            if exc.kind == PaseoErrorKind.UNAVAILABLE:
                raise
            logger.warning("could not list the models of %s: %s", provider, exc)
            return None

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
