"""Which Paseo the fake speaks: one of three releases, chosen by `FAKE_PASEO_VERSION`.

The daemon and every CLI child read the same variable (children inherit it), so one setting
makes the whole fake one release. What each release does differently is a field here, read
where the behaviour lives; no other module compares version strings. Sources:
../shared/paseo-versions.md (and paseo-daemon.md / paseo-cli.md for 0.1.65).

- `0.1.65`: 0.1.65-beta.5 (May 2026), legacy delivery only: what paseo-daemon.md describes.
- `0.5`: 0.5.0-beta.4 (August 2026): selective timelines, steering, turn ids on stream events,
  `turn_started` before the user message, the 45 s socket lease, `run -d` = `--background`.
- `current`: the newest Paseo with its legacy paths removed, as they will be after 2027-03:
  owned and explicit subscriptions only, `hello.auth` only, the newest CLI
  (`TARGET_AMBIGUOUS`, `--no-wait`, `AGENT_NOT_FOUND`, `daemon config set` / `daemon run`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

ENV = "FAKE_PASEO_VERSION"


@dataclass(frozen=True)
class FakeRelease:
    mode: str  # the FAKE_PASEO_VERSION value
    version: str  # what `server_info.version`, `paseo --version` and `daemon status` say


RELEASES = {
    "0.1.65": FakeRelease("0.1.65", "0.1.65-beta.5"),
    "0.5": FakeRelease("0.5", "0.5.0-beta.4"),
    "current": FakeRelease("current", "0.11.0-beta.5"),
}
DEFAULT_MODE = "0.1.65"


def release() -> FakeRelease:
    """The release this process speaks (an unknown value is a mistake in a test: say so)."""
    mode = os.environ.get(ENV) or DEFAULT_MODE
    if mode not in RELEASES:
        raise SystemExit(f"{ENV}={mode!r}: expected one of {', '.join(RELEASES)}")
    return RELEASES[mode]
