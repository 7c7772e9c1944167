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
from collections.abc import Mapping
from dataclasses import dataclass, replace

ENV = "FAKE_PASEO_VERSION"

FEATURES_0_1_65 = ("providersSnapshot",)
# Every flag buildServerInfoStatusPayload sets at 0.5.0-beta.4 (websocket-server.ts), with the
# conditional ones as a plain local daemon has them: no workspaceLabels, daemonStatusRpc or
# relayConfig; daemonSelfUpdate because it is not desktop-managed.
FEATURES_0_5 = (
    "directorySync",
    "providersSnapshot",
    "providersSnapshotCwd",
    "checkoutForgeSetAutoMerge",
    "checkoutGithubSetAutoMerge",
    "githubCheckDetails",
    "forgeCheckDetails",
    "forgeSearch",
    "daemonConfigReload",
    "pushTokenRevocation",
    "plugins",
    "pluginManagement",
    "pluginLogs",
    "pluginThemes",
    "skillManagement",
    "terminal-restore-modes",
    "terminal-input-mode-replay",
    "terminal-size-ownership",
    "rewind",
    "agentTimelinePromptIndex",
    "agentHistorySearch",
    "checkoutRefresh",
    "workspaceMultiplicity",
    "projectRemove",
    "projectAdd",
    "projectList",
    "worktreeRestore",
    "workspaceRecovery",
    "workspaceFileEditing",
    "providerUsageList",
    "agentDetach",
    "agentThinkingUpdate",
    "daemonDiagnostics",
    "daemonSelfUpdate",
    "agentForkContext",
    "agentForkContextCursor",
    "providerSubagents",
    "workspacePinning",
    "hubRelationship",
    "projectGithubClone",
    "workspaceGithubRepositorySearch",
    "projectCreateDirectory",
    "commitsList",
    "commitBaseClassification",
    "providerRemoval",
    "importSessionWorkspaceTarget",
    "forgeProviders",
    "selectiveAgentTimeline",
    "canonicalSubmittedPrompts",
    "stableProjectIdentity",
    "workspaceScriptManagement",
    "projectCustomIcon",
    "fsEntryOps",
    "fsEntryDuplicate",
    "checkoutDiscardChanges",
    "agentProfiles",
    "agentConfigApply",
)
# The newest flags whose behaviour the fake has (or that change nothing it serves). Left out
# on purpose, so a client never takes a path the fake would refuse: agentPromptQueue
# (activeTurnBehavior "queue"), agentRequestReceipts, workspaceRequestReceipts,
# creationLifecycle (idempotent creation), agentProviderOptions, activeTurnReject.
FEATURES_CURRENT = (
    *FEATURES_0_5,
    "ownedSubscriptions",
    "explicitEventSubscriptions",
    "agentMessageProvenance",
    "hubAgentRpc",
    "backgroundWorkspaces",
    "usageSources",
    "internalAgents",
)


@dataclass(frozen=True)
class FakeRelease:
    mode: str  # the FAKE_PASEO_VERSION value
    version: str  # what `server_info.version`, `paseo --version` and `daemon status` say
    # -- the daemon's WebSocket side and the stream its agents produce (defaults: 0.1.65) --
    features: tuple[str, ...] = FEATURES_0_1_65  # server_info.features, each flag `true`
    server_info_desktop_managed: bool = False  # server_info has `desktopManaged` (0.5)
    server_info_protocol_version: bool = False  # server_info has `protocolVersion: 1` (newest)
    turn_ids: bool = False  # stream events carry `turnId` (0.1.98)
    # `turn_started` before the run's user_message, and create answers after the run started
    # (its agent_created snapshot is `running`): agent-manager.ts streamAgent (0.5).
    turn_started_first: bool = False
    client_message_ids: bool = False  # user_message items carry `clientMessageId` (0.5)
    workspace_ids: bool = False  # snapshots carry `workspaceId` (0.1.97)
    active_turn: bool = False  # snapshots carry `activeTurn {turnId, startedAt} | null` (0.3.0)
    selective_timeline: bool = False  # hello capability `selective_agent_timeline` (0.2.0)
    steering: bool = False  # send_agent_message `activeTurnBehavior` interrupt|steer (0.5.0)
    # `attachments` kinds `forge_change_request`, `forge_issue`, `uploaded_file` (0.5.0; 0.1.65
    # has github_pr, github_issue, text, review). §2.6
    forge_attachments: bool = False
    cancel_always_replies: bool = False  # cancel with a requestId always answered (0.1.108)
    socket_lease: bool = False  # a top-level ping claims the 45 s socket lease (0.2.3)
    # Owned timeline/agent subscriptions and explicit event subscriptions; replies only to the
    # requesting socket (0.8.0, hello capability `owned_subscriptions`).
    owned_subscriptions: bool = False
    # Sockets without `owned_subscriptions` get the legacy broadcasts and replies fan out to
    # every socket of their clientId; False once those COMPAT paths are removed (2027-03).
    legacy_delivery: bool = True
    header_auth: bool = True  # password as subprotocol `paseo.bearer.<pw>` (gone 2027-03-24)
    hello_auth: bool = False  # password in `hello.auth`, `hello.rejected` (0.9.1 / 0.10)
    ping_before_hello: bool = True  # a top-level ping before hello is answered (newest: 4002)
    # -- the CLI (fake_paseo_cli.py, fake_paseo_commands.py; paseo-versions.md §3) --
    # `run`'s flag to return at once (commander flags), the hidden aliases it still takes,
    # and what using an alias prints on stderr (None: nothing). §3.2
    run_no_wait_flags: str = "-d, --detach"
    run_no_wait_aliases: tuple[str, ...] = ()
    run_alias_warning: str | None = None
    # A bare `run` creates a new workspace (stderr `Created workspace ...` and a tip) and
    # honours PASEO_AGENT_ID / PASEO_WORKSPACE_ID (0.1.97-beta.1 / 0.2.0-beta.2). §3.1, §3.2
    run_places_in_workspaces: bool = False
    # `--host` and `--home` are root options, before or after the subcommand (0.8.0). §3.1
    global_target_options: bool = False
    # One target only: PASEO_HOME with PASEO_HOST (or --home with --host) is TARGET_AMBIGUOUS,
    # and a home means its daemon's published endpoint, with no fallback. §3.1
    exclusive_target: bool = False
    # Agent commands answer AGENT_NOT_FOUND for an unknown id (0.11.0-beta.5, #6053). §3.8
    agent_not_found_code: bool = False
    # `daemon start` reads only config.json (its listen/relay/foreground flags fail with a
    # migration); `daemon config set|get` and `daemon run` exist (0.9.0, #4575). §3.9
    persistent_daemon_config: bool = False
    # `permit ls` prints full request ids, not their first 8 characters (0.9.2, #5305). §3.7
    permit_full_ids: bool = False
    # `provider ls --json` prints `enabled` as a bool and `modes` as `[{id, label}]`, not a
    # joined string of labels (newest `cli/commands/provider/ls.ts`; its first release is not
    # known, so only the newest release has it).
    provider_modes_with_ids: bool = False


_RELEASE_0_5 = FakeRelease(
    "0.5",
    "0.5.0-beta.4",
    features=FEATURES_0_5,
    server_info_desktop_managed=True,
    turn_ids=True,
    turn_started_first=True,
    client_message_ids=True,
    workspace_ids=True,
    active_turn=True,
    selective_timeline=True,
    steering=True,
    forge_attachments=True,
    cancel_always_replies=True,
    socket_lease=True,
    run_no_wait_flags="-d, --background",
    run_no_wait_aliases=("--detach",),
    run_places_in_workspaces=True,
)
# Everything 0.5 does, and what came after it (its legacy paths gone).
_RELEASE_CURRENT = replace(
    _RELEASE_0_5,
    mode="current",
    version="0.11.0-beta.5",
    features=FEATURES_CURRENT,
    server_info_protocol_version=True,
    owned_subscriptions=True,
    legacy_delivery=False,
    header_auth=False,
    hello_auth=True,
    ping_before_hello=False,
    run_no_wait_flags="--no-wait",
    run_no_wait_aliases=("-d, --background",),
    # Invented: the docs say only that these aliases "print a warning to stderr"; the real
    # text was not found (paseo-versions.md §5).
    run_alias_warning=(
        "Warning: `paseo run --background` (-d) is deprecated and will be removed; use --no-wait"
    ),
    global_target_options=True,
    exclusive_target=True,
    agent_not_found_code=True,
    persistent_daemon_config=True,
    permit_full_ids=True,
    provider_modes_with_ids=True,
)
RELEASES = {
    "0.1.65": FakeRelease("0.1.65", "0.1.65-beta.5"),
    "0.5": _RELEASE_0_5,
    "current": _RELEASE_CURRENT,
}
DEFAULT_MODE = "0.1.65"


def release(env: Mapping[str, str] | None = None) -> FakeRelease:
    """The release this process speaks, or one with environment `env` would (an unknown
    value is a mistake in a test: say so)."""
    mode = (os.environ if env is None else env).get(ENV) or DEFAULT_MODE
    if mode not in RELEASES:
        raise SystemExit(f"{ENV}={mode!r}: expected one of {', '.join(RELEASES)}")
    return RELEASES[mode]
