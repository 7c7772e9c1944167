"""What each paseo CLI release takes, as data: the one place that compares CLI versions.

Sources: /work/shared/paseo-versions.md §3 (and paseo-cli.md for 0.1.65). Each capability is
a table of (first release, how), newest first; `features_for` reads one row per table.

- `run`'s flag to return at once: `-d, --detach` up to 0.2.0-beta.1; `-d, --background` (with
  `--detach` hidden) from 0.2.0-beta.2; `--no-wait` in the newest CLI, where `-d` and
  `--background` are deprecated aliases that print a warning on stderr. The first release with
  `run --no-wait` is not known (paseo-versions.md §5): 0.5.0-beta.4 lacks it and 0.11.0-beta.5
  has it. The rule is conservative: `--no-wait` only from 0.11.0-beta.5; below it
  `--background`, which every release from 0.2.0-beta.2 on still takes (at worst with that
  warning, which is never read as an error).
- Steering: no table, since no released CLI can hand a running turn more text: `send --steer`
  exists only in unreleased index versions of the CLI (paseo-versions.md §3.5). When a release
  has it, it becomes a row here and `CliPaseoClient.steer_agent_turn` its user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

# `-d` means "return at once" in every release (--detach, --background, a --no-wait alias).
PORTABLE_RUN_NO_WAIT_FLAG = "-d"

# (first release, flag), newest first.
RUN_NO_WAIT_FLAG: tuple[tuple[str, str], ...] = (
    ("0.11.0-beta.5", "--no-wait"),
    ("0.2.0-beta.2", "--background"),
    ("0.0.0", "--detach"),
)

_SEMVER = re.compile(r"(?<![\d.])(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?")


@dataclass(frozen=True)
class CliVersion:
    """A release as `paseo --version` printed it, comparable (0.2.0-beta.2 before 0.2.0,
    as `packaging` orders prereleases)."""

    text: str
    key: Version

    @classmethod
    def parse(cls, text: str) -> CliVersion | None:
        """The first semver in `text` (`paseo --version` prints e.g. `0.1.65-beta.5`)."""
        match = _SEMVER.search(text)
        if match is None:
            return None
        try:
            return cls(match[0], Version(match[0]))
        except InvalidVersion:
            return None

    def at_least(self, first: str) -> bool:
        return self.key >= Version(first)


@dataclass(frozen=True)
class CliFeatures:
    """How to do each version-dependent thing with one CLI."""

    version: str | None  # as `paseo --version` printed it; None when it could not be read
    run_no_wait_flag: str

    def describe(self) -> str:
        """`paseo CLI 0.5.0-beta.4`, for messages."""
        return f"paseo CLI {self.version}" if self.version else "paseo CLI (version unknown)"


# For a CLI whose version could not be read: what every release takes.
PORTABLE = CliFeatures(version=None, run_no_wait_flag=PORTABLE_RUN_NO_WAIT_FLAG)


def features_for(version: CliVersion) -> CliFeatures:
    """What `version` takes, from the tables above."""
    return CliFeatures(
        version=version.text,
        run_no_wait_flag=_pick(version, RUN_NO_WAIT_FLAG),
    )


def _pick(version: CliVersion, table: tuple[tuple[str, str], ...]) -> str:
    return next(how for first, how in table if version.at_least(first))
