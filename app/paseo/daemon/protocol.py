"""What a connected daemon can do, decided once from its `server_info`: versions as data.

Every version-dependent choice of the daemon transport reads a `DaemonProtocol`; nothing else
compares versions. A feature is present when the daemon advertises its flag or its version is at
least the first release that had it (a flag may stop being advertised after its gate is
removed, while the feature stays: ../paseo-versions.md §0.4, §1.3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from packaging.version import InvalidVersion, Version


class Feature(StrEnum):
    """Daemon behaviours the gateway chooses between. (Turn ids on stream events and
    `hello.auth` need no choice: the gateway reads ids where they are and always sends the
    password in the hello, which older daemons drop.)"""

    # Subscriptions the host issues ids for; nothing is pushed that was not asked for (0.8.0).
    OWNED_SUBSCRIPTIONS = "owned_subscriptions"
    # `agent.timeline.set_subscription.request` names the agents whose stream a socket gets.
    SELECTIVE_TIMELINE = "selective_timeline"
    # `send_agent_message_request.activeTurnBehavior: "steer"` (0.5.0-beta.1).
    STEERING = "steering"


@dataclass(frozen=True)
class _Rule:
    flag: str | None  # the `server_info.features` key, where the daemon advertises one
    since: Version | None  # the first release that has it


_RULES: dict[Feature, _Rule] = {
    Feature.OWNED_SUBSCRIPTIONS: _Rule("ownedSubscriptions", Version("0.8.0")),
    Feature.SELECTIVE_TIMELINE: _Rule("selectiveAgentTimeline", Version("0.2.0b2")),
    Feature.STEERING: _Rule(None, Version("0.5.0b1")),
}

# Daemon releases this gateway was run against (the contract suite on real builds).
CHECKED_RELEASES = ("0.1.65-beta.5", "0.5.0-beta.4")


class Delivery(StrEnum):
    """How the daemon hands a socket the agents' streams."""

    OWNED = "owned subscriptions"  # one host-issued subscription per followed agent
    SELECTIVE = "selective timeline"  # the socket names the whole list of agents it follows
    LEGACY = "legacy broadcast"  # every agent's stream to every socket (removal from 2027-03)


@dataclass(frozen=True)
class DaemonProtocol:
    version: str | None
    features: frozenset[Feature]

    def has(self, feature: Feature) -> bool:
        return feature in self.features

    @property
    def delivery(self) -> Delivery:
        if self.has(Feature.OWNED_SUBSCRIPTIONS):
            return Delivery.OWNED
        if self.has(Feature.SELECTIVE_TIMELINE):
            return Delivery.SELECTIVE
        return Delivery.LEGACY


def protocol_of(server_info: Mapping[str, Any]) -> DaemonProtocol:
    """The protocol of the daemon that sent this `server_info` status."""
    raw_version = server_info.get("version")
    version_text = raw_version if isinstance(raw_version, str) and raw_version else None
    version = _parse(version_text)
    flags = server_info.get("features")
    flags = flags if isinstance(flags, Mapping) else {}
    present = frozenset(
        feature
        for feature, rule in _RULES.items()
        if (rule.flag is not None and flags.get(rule.flag) is True)
        or (version is not None and rule.since is not None and version >= rule.since)
    )
    return DaemonProtocol(version_text, present)


def version_note(version: str | None) -> str | None:
    """A warning when the daemon's release is not one this gateway was checked against."""
    if version is None:
        return "the daemon did not say its version"
    if version in CHECKED_RELEASES:
        return None
    checked = ", ".join(CHECKED_RELEASES)
    return f"daemon version {version} was not checked with this gateway (checked: {checked})"


def _parse(text: str | None) -> Version | None:
    """`0.5.0-beta.4` as a comparable version (None when it is not one)."""
    if text is None:
        return None
    try:
        return Version(text)
    except InvalidVersion:
        return None
