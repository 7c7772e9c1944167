"""The CLI release table: which flags each paseo CLI version is given."""

from __future__ import annotations

from typing import Any

import pytest

from app.paseo.cli.versions import PORTABLE, CliVersion, features_for


@pytest.mark.parametrize(
    ("printed", "flag"),
    [
        ("0.1.65-beta.5\n", "--detach"),
        ("0.2.0-beta.1", "--detach"),
        ("0.2.0-beta.2", "--background"),
        ("0.2.0", "--background"),
        ("0.5.0-beta.4\n", "--background"),
        ("0.9.2", "--background"),  # --no-wait may exist here: not known, so not used
        ("0.11.0-beta.4", "--background"),
        ("0.11.0-beta.5\n", "--no-wait"),
        ("0.11.0", "--no-wait"),
        ("v1.2.3", "--no-wait"),
        ("paseo 0.2.0-beta.10", "--background"),
    ],
)
def test_run_flag_per_release(printed: str, flag: str) -> None:
    version = CliVersion.parse(printed)
    assert version is not None
    assert features_for(version).run_no_wait_flag == flag


def test_prereleases_sort_before_their_release_and_numbers_as_numbers() -> None:
    def key(text: str) -> Any:
        version = CliVersion.parse(text)
        assert version is not None
        return version.key

    ordered = ["0.1.65-beta.5", "0.2.0-beta.2", "0.2.0-beta.10", "0.2.0", "0.10.0", "0.11.0"]
    assert sorted(ordered, key=key) == ordered


@pytest.mark.parametrize("printed", ["", "dev build", "0.1", "version 7"])
def test_unreadable_versions(printed: str) -> None:
    assert CliVersion.parse(printed) is None
    assert PORTABLE.run_no_wait_flag == "-d"  # what every release takes instead
    assert PORTABLE.describe() == "paseo CLI (version unknown)"
