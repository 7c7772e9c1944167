"""What a new session may ask for: the pure decisions on models, modes and folders, and how
the provider catalog asks Paseo (cached, one question at a time)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from app.errors import CwdNotADirectory, CwdNotFound, ProviderNotReady, UnknownMode, UnknownModel
from app.paseo.cli.shapes import CliProviderRow
from app.paseo.errors import PaseoError
from app.paseo.types import ModelInfo, ProviderInfo, ProviderMode
from app.services.providers import (
    NOT_READY_RETRY_AFTER_SECONDS,
    ProviderCatalog,
    decide_mode,
    decide_model,
    refuse_mode,
)
from app.services.workspaces import require_directory


def _provider(
    status: str = "ready", modes: list[tuple[str | None, str]] | None = None
) -> ProviderInfo:
    listed = [("load-test", "Load Test")] if modes is None else modes
    return ProviderInfo(
        provider="mock",
        label="Mock Load Test",
        status=status,
        enabled=True,
        default_mode="load-test",
        modes=[ProviderMode(id=mode_id, label=label) for mode_id, label in listed],
    )


def _models(*ids: str) -> list[ModelInfo]:
    return [ModelInfo(provider="mock", id=model_id, label=model_id) for model_id in ids]


# --- models ------------------------------------------------------------------------------------


def test_a_listed_model_passes() -> None:
    decide_model(
        _provider(), "ten-second-stream", _models("five-minute-stream", "ten-second-stream")
    )


def test_a_model_the_provider_does_not_list_is_refused_naming_the_choices() -> None:
    with pytest.raises(UnknownModel) as raised:
        decide_model(_provider(), "gpt-5", _models("five-minute-stream", "ten-second-stream"))
    error = raised.value
    assert (error.status, error.code) == (422, "unknown_model")
    assert error.extra == {"field": "model", "models": ["five-minute-stream", "ten-second-stream"]}
    assert "'gpt-5'" in error.detail and "ten-second-stream" in error.detail


@pytest.mark.parametrize(
    ("status", "listed"),
    [("ready", None), ("loading", None), ("loading", [])],
    ids=["list-failed", "loading-failed", "loading-empty"],
)
def test_models_that_cannot_be_listed_yet_are_a_503_to_retry(
    status: str, listed: list[ModelInfo] | None
) -> None:
    with pytest.raises(ProviderNotReady) as raised:
        decide_model(_provider(status), "ten-second-stream", listed)
    error = raised.value
    assert (error.status, error.code) == (503, "provider_not_ready")
    assert error.headers == {"Retry-After": str(NOT_READY_RETRY_AFTER_SECONDS)}


def test_a_ready_provider_that_lists_no_models_takes_only_its_default() -> None:
    with pytest.raises(UnknownModel) as raised:
        decide_model(_provider(), "anything", [])
    assert raised.value.extra["models"] == [] and "leave `model` out" in raised.value.detail


# --- modes -------------------------------------------------------------------------------------


def test_a_mode_id_passes_and_others_are_refused_naming_the_ids() -> None:
    decide_mode(_provider(), "load-test")
    with pytest.raises(UnknownMode) as raised:
        decide_mode(_provider(), "yolo")
    error = raised.value
    assert (error.status, error.code) == (422, "unknown_mode")
    assert error.extra == {"field": "mode", "modes": ["load-test"]}
    assert "provider 'mock' has no mode 'yolo'" in error.detail


def test_a_label_sent_for_a_mode_is_answered_with_its_id() -> None:
    claude = _provider(modes=[("default", "Always Ask"), ("plan", "Plan Mode")])
    with pytest.raises(UnknownMode, match=r"'Plan Mode' is the label of 'plan'"):
        decide_mode(claude, "Plan Mode")


def test_a_provider_still_loading_has_no_modes_to_check_yet() -> None:
    with pytest.raises(ProviderNotReady) as raised:
        decide_mode(_provider("loading", modes=[]), "load-test")
    assert raised.value.headers["Retry-After"] == str(NOT_READY_RETRY_AFTER_SECONDS)


def test_modes_that_cannot_be_known_are_left_to_paseo() -> None:
    decide_mode(_provider(modes=[]), "anything")  # a provider that lists none (pi)
    decide_mode(_provider(modes=[("load-test", "Load Test"), (None, "Custom")]), "custom")


def test_an_agents_own_modes_are_held_the_same_way() -> None:
    refuse_mode("plan", [("plan", "Plan"), ("build", "Build")], "this agent")
    with pytest.raises(UnknownMode, match=r"this agent has no mode 'Build' \('Build' is the"):
        refuse_mode("Build", [("plan", "Plan"), ("build", "Build")], "this agent")


# --- the CLI's provider list -------------------------------------------------------------------


def _row(**fields: Any) -> ProviderInfo:
    base = {
        "provider": "claude",
        "label": "Claude",
        "status": "available",
        "enabled": "Enabled",
        "defaultMode": "default",
    }
    return CliProviderRow.model_validate({**base, **fields}).to_gateway()


def test_older_clis_print_mode_labels_whose_ids_come_from_paseos_manifest() -> None:
    info = _row(modes="Always Ask, Accept File Edits, Plan Mode, Bypass")
    assert [(mode.id, mode.label) for mode in info.modes] == [
        ("default", "Always Ask"),
        ("acceptEdits", "Accept File Edits"),
        ("plan", "Plan Mode"),
        ("bypassPermissions", "Bypass"),
    ]
    assert info.enabled and info.status == "ready"
    custom = _row(provider="mine", modes="Fast, Slow")
    assert [(mode.id, mode.label) for mode in custom.modes] == [(None, "Fast"), (None, "Slow")]
    assert _row(modes="-").modes == [] and _row(modes="").modes == []


def test_newer_clis_print_mode_ids_and_a_bool() -> None:
    info = _row(enabled=False, modes=[{"id": "plan", "label": "Plan Mode"}])
    assert [(mode.id, mode.label) for mode in info.modes] == [("plan", "Plan Mode")]
    assert not info.enabled


# --- the catalog: cached, one question at a time -----------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Paseo:
    """What the catalog asks of a Paseo client, counted."""

    def __init__(self) -> None:
        self.status = "ready"
        self.models: list[ModelInfo] = _models("ten-second-stream")
        self.failure: PaseoError | None = None
        self.asked = {"providers": 0, "models": 0}
        self.gate = asyncio.Event()
        self.gate.set()

    async def ping(self) -> None:
        return None

    async def list_providers(self) -> list[ProviderInfo]:
        self.asked["providers"] += 1
        return [_provider(self.status, modes=[] if self.status == "loading" else None)]

    async def list_models(self, provider: str) -> list[ModelInfo]:
        self.asked["models"] += 1
        await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return self.models


def _catalog(paseo: _Paseo, clock: _Clock) -> ProviderCatalog:
    return ProviderCatalog(paseo, clock=clock)  # type: ignore[arg-type]


async def test_models_are_asked_once_for_many_sessions_and_again_when_old() -> None:
    paseo, clock = _Paseo(), _Clock()
    catalog = _catalog(paseo, clock)
    paseo.gate.clear()
    checks = [
        asyncio.create_task(catalog.check_model("mock", "ten-second-stream")) for _ in range(5)
    ]
    await asyncio.sleep(0)  # every check is waiting on the one question
    paseo.gate.set()
    await asyncio.gather(*checks)
    assert paseo.asked == {"providers": 1, "models": 1}
    clock.now += catalog.models_fresh_seconds + 1
    await catalog.check_model("mock", "ten-second-stream")
    assert paseo.asked["models"] == 2


async def test_a_model_missing_from_an_old_answer_is_asked_for_again_before_refusal() -> None:
    paseo, clock = _Paseo(), _Clock()
    catalog = _catalog(paseo, clock)
    await catalog.check_model("mock", "ten-second-stream")
    with pytest.raises(UnknownModel):  # the answer is fresh: refused without asking again
        await catalog.check_model("mock", "one-minute-stream")
    assert paseo.asked["models"] == 1
    paseo.models = _models("ten-second-stream", "one-minute-stream")  # added on the daemon
    clock.now += catalog.fresh_seconds + 1
    await catalog.check_model("mock", "one-minute-stream")
    assert paseo.asked["models"] == 2


async def test_a_listing_that_fails_is_a_503_and_not_kept() -> None:
    paseo, clock = _Paseo(), _Clock()
    catalog = _catalog(paseo, clock)
    paseo.failure = PaseoError("PROVIDER_ERROR", "Failed to list models")
    with pytest.raises(ProviderNotReady):
        await catalog.check_model("mock", "ten-second-stream")
    paseo.failure = None
    await catalog.check_model("mock", "ten-second-stream")
    paseo.failure = PaseoError("DAEMON_NOT_RUNNING", "down")  # the daemon: its own 503
    clock.now += catalog.models_fresh_seconds + 1
    with pytest.raises(PaseoError):
        await catalog.check_model("mock", "ten-second-stream")


async def test_a_loading_provider_list_is_asked_again_within_a_second() -> None:
    paseo, clock = _Paseo(), _Clock()
    catalog = _catalog(paseo, clock)
    paseo.status = "loading"
    with pytest.raises(ProviderNotReady):
        await catalog.check_mode("mock", "load-test")
    paseo.status = "ready"
    clock.now += 1.5  # far less than fresh_seconds
    await catalog.check_mode("mock", "load-test")
    assert paseo.asked["providers"] == 2
    await catalog.check_mode("mock", "load-test")
    assert paseo.asked["providers"] == 2  # a ready answer is kept


# --- folders -----------------------------------------------------------------------------------


def test_a_folder_under_a_visible_root_must_exist_and_be_a_directory(tmp_path: Path) -> None:
    roots = [str(tmp_path)]
    (tmp_path / "repo").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    require_directory(str(tmp_path / "repo"), roots)
    require_directory(str(tmp_path), roots)
    with pytest.raises(CwdNotFound) as missing:
        require_directory(str(tmp_path / "nope"), roots)
    assert (missing.value.status, missing.value.code) == (422, "cwd_not_found")
    assert missing.value.extra == {"field": "cwd"}
    with pytest.raises(CwdNotADirectory) as file:
        require_directory(str(tmp_path / "notes.txt"), roots)
    assert file.value.code == "cwd_not_a_directory"


def test_a_root_the_gateway_cannot_see_is_the_daemons_to_check(tmp_path: Path) -> None:
    """Roots are paths on the daemon's machine; one that is no directory here is elsewhere."""
    remote = tmp_path / "on-the-daemon"
    require_directory(str(remote / "repo"), [str(remote)])
