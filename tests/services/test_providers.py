"""The provider check at session creation, against the fake daemon."""

from __future__ import annotations

import pytest

from app.errors import InvalidInput
from app.paseo.cli.client import CliPaseoClient
from app.paseo.errors import PaseoError
from app.services.providers import ProviderCatalog
from tests.fakes.harness import FAKE_PASEO_BIN, FakePaseoDaemon


async def test_known_providers_pass_and_others_say_what_the_daemon_has(
    fake_daemon: FakePaseoDaemon,
) -> None:
    paseo = CliPaseoClient(str(FAKE_PASEO_BIN), host=fake_daemon.host, home=str(fake_daemon.home))
    try:
        catalog = ProviderCatalog(paseo)
        await catalog.check("mock")
        with pytest.raises(InvalidInput, match=r"unknown provider 'nosuch'.*mock"):
            await catalog.check("nosuch")
        with pytest.raises(InvalidInput, match="'codex' is unavailable"):
            await catalog.check("codex")
    finally:
        await paseo.aclose()


async def test_a_daemon_that_is_down_is_not_taken_for_the_static_list(
    fake_daemon: FakePaseoDaemon,
) -> None:
    """`provider ls` answers a built-in list when the daemon is down; the check does not."""
    paseo = CliPaseoClient(str(FAKE_PASEO_BIN), host="127.0.0.1:1", home=str(fake_daemon.home))
    try:
        with pytest.raises(PaseoError) as raised:
            await ProviderCatalog(paseo).check("claude")
        assert raised.value.code == "DAEMON_NOT_RUNNING"
    finally:
        await paseo.aclose()
