"""`PaseoClient` over the paseo CLI: one child process per call, per ../paseo-cli contract.

Rules every call follows: argv lists only; client values bound as `--flag=value` and
positionals after `--`; prompts to `send` go through `--prompt-file`; the daemon address
reaches the child as PASEO_HOST in its environment, never in argv (a password stays out of
`ps`). Flags that differ between CLI releases come from `app.paseo.cli.versions`, chosen from
`paseo --version`, read once per client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from app.aio import SingleFlight, cancel_and_wait
from app.paseo.cli import attach_gap
from app.paseo.cli.attach_stream import HEADER_END, AttachParser, ParsedItem, PromptSeen
from app.paseo.cli.output import check, error_from_result, parse_json, parse_json_list
from app.paseo.cli.process import ChildProcess, CliResult, CliRunner
from app.paseo.cli.reply import Reply
from app.paseo.cli.shapes import (
    CliAgentDetail,
    CliAgentRow,
    CliArchiveResult,
    CliCreatedAgent,
    CliDeleteResult,
    CliModelRow,
    CliModeResult,
    CliPermitResult,
    CliPermitRow,
    CliProviderRow,
    CliSendResult,
    CliStopResult,
    CliUpdateResult,
    CliWaitResult,
)
from app.paseo.cli.transcript import last_reply, same_words
from app.paseo.cli.transcript import prompt_history as transcript_history
from app.paseo.cli.versions import PORTABLE, CliFeatures, CliVersion, features_for
from app.paseo.errors import PaseoError
from app.paseo.media import IMAGE_EXTENSIONS, NO_MEDIA, PromptImage, PromptMedia
from app.paseo.prompts import recorded_forms
from app.paseo.types import (
    AgentDetail,
    AgentNotice,
    AgentStarted,
    AgentSummary,
    ArchiveResult,
    CreatedAgent,
    DaemonFacts,
    DaemonLink,
    DeleteResult,
    ModelInfo,
    NewAgent,
    PendingPermission,
    PermissionAnswer,
    PermissionRequest,
    PermissionRequested,
    PermissionResolved,
    PromptDelivered,
    PromptHistory,
    ProviderInfo,
    StopResult,
    TextDelta,
    TurnEnded,
    TurnEvent,
    TurnOutcome,
    TurnOutput,
    TurnStarted,
    Usage,
)

logger = logging.getLogger(__name__)

# `paseo run` takes its prompt only as an argument; Linux caps one argv string at 128 KiB.
MAX_RUN_PROMPT_BYTES = 128 * 1024 - 1024
# While an agent waits for a permission, how often the CLI transport looks whether it was
# answered elsewhere (each look is one `inspect`); an answer through this gateway process is
# seen at once.
PERMISSION_POLL_SECONDS = 5.0
_PERMISSION_NOTICES = frozenset({"permission", "permission_resolved"})
# After the attach header, the replayed history arrives in one burst; this much silence ends it.
REPLAY_QUIET_SECONDS = 0.3
REPLAY_FIRST_BYTES_SECONDS = 3.0
REPLAY_MAX_SECONDS = 10.0
# How long to wait for the attach header before giving up on live output for a turn.
ATTACH_HEADER_TIMEOUT_SECONDS = 30.0
# After the turn ended, attach may still be printing its last chunks.
DRAIN_QUIET_SECONDS = 0.3
DRAIN_MAX_SECONDS = 3.0

# Said (as an `error` notice) when the transcript does not go on from what was streamed.
UNFAITHFUL_REPLY_NOTICE = (
    "The reply streamed for this turn is incomplete or out of order: paseo attach lost part "
    "of the agent's output and it could not be restored. The agent's transcript has the "
    "whole answer (paseo logs {agent_id})."
)

_ResultT = TypeVar("_ResultT", CliSendResult, CliWaitResult)
_FollowMode = Literal["new", "send", "resume"]
# Whether the followed turn's prompt is the session's first (recorded trimmed), a later one
# (recorded as sent), or not known (a resumed turn): see app.paseo.prompts.
_FIRST_PROMPT: dict[_FollowMode, bool | None] = {"new": True, "send": False, "resume": None}

# Never inherited by a child: the daemon selectors (the newest CLI refuses PASEO_HOME together
# with PASEO_HOST: TARGET_AMBIGUOUS) and the agent context a gateway started from inside an
# agent session would carry (with it `run` makes a subagent of that agent, 0.2.0-beta.2+).
_SCRUBBED_ENV = frozenset({"PASEO_HOME", "PASEO_HOST", "PASEO_AGENT_ID", "PASEO_WORKSPACE_ID"})

_WAIT_STATUS_TO_OUTCOME: dict[str, TurnOutcome] = {
    "idle": "completed",
    "completed": "completed",
    "error": "error",
    "timeout": "timeout",
}

_NO_LINK = DaemonLink("unknown")


def child_env(base: Mapping[str, str], host: str | None, home: str | None) -> dict[str, str]:
    """The children's environment: `base` without inherited daemon selectors or agent
    context, plus exactly one target: PASEO_HOST when a host is configured, else PASEO_HOME.

    With a host, the home is not handed on (and this client uses it for nothing else): the
    CLI then keeps its client id in its own default home, ~/.paseo, which no call relies on.
    A home alone names the daemon through it: the newest CLI finds the address that home's
    daemon published; 0.1.65 finds only a unix socket or a non-default address configured
    there (or in an inherited PASEO_LISTEN), so configure a host for a TCP daemon.
    """
    env = {key: value for key, value in base.items() if key not in _SCRUBBED_ENV}
    if host:
        env["PASEO_HOST"] = host
    elif home:
        env["PASEO_HOME"] = home
    env.setdefault("NODE_COMPILE_CACHE", str(Path(tempfile.gettempdir()) / "paseo-node-cache"))
    env["NO_COLOR"] = "1"
    return env


class CliPaseoClient:
    """Talks to Paseo by spawning the `paseo` CLI (its environment: `child_env`)."""

    def __init__(
        self,
        binary: str = "paseo",
        *,
        host: str | None = None,
        home: str | None = None,
        max_processes: int = 4,
        timeout: float = 60.0,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        env = child_env(os.environ if base_env is None else base_env, host, home)
        self.runner = CliRunner(binary, env=env, max_processes=max_processes, timeout=timeout)
        self._reads: SingleFlight[tuple[str, ...], CliResult] = SingleFlight()
        self._features: CliFeatures | None = None
        self._version_read: SingleFlight[str, CliFeatures] = SingleFlight()
        # Set when this client answers a permission of the agent (its turn looks again).
        self._answered: dict[str, asyncio.Event] = {}

    async def _read(self, args: list[str]) -> CliResult:
        """A call that only reads: identical ones in flight share one child."""
        return await self._reads.run(tuple(args), lambda: self.runner.run(args))

    async def cli_features(self) -> CliFeatures:
        """What this client's CLI takes, from `paseo --version`: read the first time it is
        needed, by one child whatever the number of callers, then kept."""
        if self._features is None:
            self._features = await self._version_read.run("--version", self._read_features)
        return self._features

    async def _read_features(self) -> CliFeatures:
        try:
            printed = check(await self.runner.run(["--version"])).stdout
        except PaseoError as exc:
            logger.warning(
                "cannot read the paseo CLI's version (%s): using flags every release takes", exc
            )
            return PORTABLE
        version = CliVersion.parse(printed)
        if version is None:
            logger.warning("paseo --version printed %r: using flags every release takes", printed)
            return PORTABLE
        return features_for(version)

    # --- short calls ---------------------------------------------------------------------------

    async def ping(self) -> DaemonFacts:
        """`ls` fails with DAEMON_NOT_RUNNING when nothing answers at the daemon's address
        (`provider ls` would not); a call cut short by the runner's time limit is CLI_TIMEOUT,
        which says only that the call was slow, not that the daemon is down."""
        check(await self._read(["ls", "--json"]))
        return DaemonFacts("cli")

    @property
    def link(self) -> DaemonLink:
        return _NO_LINK  # a child per call: no connection outlives one

    async def connect(self, timeout: float) -> DaemonLink:
        return _NO_LINK

    async def list_agents(
        self, *, include_archived: bool = False, labels: Mapping[str, str] | None = None
    ) -> list[AgentSummary]:
        args = ["ls", "--json"]
        if include_archived:
            args.append("--all")
        args += [f"--label={key}={value}" for key, value in (labels or {}).items()]
        return [row.to_gateway() for row in parse_json_list(await self._read(args), CliAgentRow)]

    async def inspect_agent(self, agent_id: str) -> AgentDetail:
        result = await self._read(["inspect", "--json", "--", agent_id])
        return parse_json(result, CliAgentDetail).to_gateway()

    async def import_agent(
        self,
        *,
        provider: str,
        session_id: str,
        cwd: str,
        labels: Mapping[str, str] | None = None,
    ) -> CreatedAgent:
        args = ["import", "--json", f"--provider={provider}", f"--cwd={cwd}"]
        args += [f"--label={key}={value}" for key, value in (labels or {}).items()]
        result = await self.runner.run([*args, "--", session_id])
        return parse_json(result, CliCreatedAgent).to_gateway()

    async def update_agent(
        self, agent_id: str, *, title: str | None = None, labels: Mapping[str, str] | None = None
    ) -> None:
        args = ["agent", "update", "--json"]
        if title:
            args.append(f"--name={title}")
        args += [f"--label={key}={value}" for key, value in (labels or {}).items()]
        parse_json(await self.runner.run([*args, "--", agent_id]), CliUpdateResult)

    async def set_agent_mode(self, agent_id: str, mode: str) -> None:
        result = await self.runner.run(["agent", "mode", "--json", "--", agent_id, mode])
        parse_json(result, CliModeResult)

    async def list_permissions(self, agent_id: str) -> list[PermissionRequest]:
        """Ids and names from `inspect`; descriptions from `permit ls` (by 8-character id)."""
        return await self._describe(
            agent_id, (await self.inspect_agent(agent_id)).pending_permissions
        )

    async def _describe(
        self, agent_id: str, pending: list[PendingPermission]
    ) -> list[PermissionRequest]:
        if not pending:
            return []
        rows = parse_json_list(await self._read(["permit", "ls", "--json"]), CliPermitRow)
        mine = [row for row in rows if row.agent_id == agent_id]
        return [
            PermissionRequest(
                id=request.id,
                name=request.tool,
                kind=None,
                description=next(
                    # `permit ls` prints 8-character ids up to 0.9.1, whole ones from 0.9.2.
                    (row.description for row in mine if request.id.startswith(row.id)),
                    None,
                ),
            )
            for request in pending
        ]

    async def answer_permission(
        self, agent_id: str, permission_id: str, answer: PermissionAnswer
    ) -> None:
        args = ["permit", answer.behavior, "--json"]
        if answer.behavior == "deny":
            if answer.message:
                args.append(f"--message={answer.message}")
            if answer.interrupt:
                args.append("--interrupt")
        result = await self.runner.run([*args, "--", agent_id, permission_id])
        parse_json_list(result, CliPermitResult)
        if (answered := self._answered.get(agent_id)) is not None:
            answered.set()  # a turn of this client waits on it: it looks again now

    async def stop_agent(self, agent_id: str) -> StopResult:
        result = await self.runner.run(["stop", "--json", "--", agent_id])
        if (answered := self._answered.get(agent_id)) is not None:
            answered.set()  # a stop denies what the agent asked: its turn looks again now
        return parse_json(result, CliStopResult).to_gateway()

    async def archive_agent(self, agent_id: str, *, force: bool = False) -> ArchiveResult:
        args = ["archive", "--json", *(["--force"] if force else []), "--", agent_id]
        return parse_json(await self.runner.run(args), CliArchiveResult).to_gateway()

    async def delete_agent(self, agent_id: str) -> DeleteResult:
        result = await self.runner.run(["delete", "--json", "--", agent_id])
        return parse_json(result, CliDeleteResult).to_gateway()

    async def list_providers(self) -> list[ProviderInfo]:
        result = await self._read(["provider", "ls", "--json"])
        return [row.to_gateway() for row in parse_json_list(result, CliProviderRow)]

    async def list_models(self, provider: str) -> list[ModelInfo]:
        result = await self._read(["provider", "models", "--json", "--", provider])
        return [row.to_gateway(provider) for row in parse_json_list(result, CliModelRow)]

    async def read_logs(self, agent_id: str) -> str:
        result = await self._read(["logs", "--", agent_id])
        return check(result, text_code="LOGS_FAILED").stdout

    async def steer_agent_turn(
        self, agent_id: str, prompt: str, *, turn_key: str | None = None
    ) -> None:
        """No released CLI can steer (app.paseo.cli.versions): STEER_UNSUPPORTED, naming the
        CLI's version; nothing runs but the (cached) version read."""
        cli = (await self.cli_features()).describe()
        raise PaseoError(
            "STEER_UNSUPPORTED",
            f"the {cli} cannot hand a running turn more text: its `send` always interrupts "
            "the turn (no released paseo CLI can steer); steering needs the daemon transport "
            "(PASEO_GATEWAY_TRANSPORT=daemon)",
        )

    async def prompt_history(
        self, agent_id: str, prompt: str, *, turn_key: str | None = None
    ) -> PromptHistory:
        """From `logs` (the whole transcript): the CLI cannot hand Paseo a key, so by text."""
        return transcript_history(await self.read_logs(agent_id), prompt)

    async def _faithful(self, agent_id: str, prompt: str, logged: str, first: bool | None) -> str:
        """The reply as `attach` replays it, if it has the same words as the logged one."""
        try:
            async with self.runner.spawn(["attach", "--", agent_id]) as attach:
                replayed = _replayed_reply(await _read_replay(attach), prompt, first)
        except PaseoError as exc:
            logger.warning("no replay of agent %s: %s", agent_id, exc)
            return logged
        if replayed is None or not same_words(replayed, logged):
            return logged
        return replayed

    async def create_agent(
        self, agent: NewAgent, prompt: str, images: tuple[PromptImage, ...] = ()
    ) -> CreatedAgent:
        """`paseo run` returning at once (`--detach`, `--background` or `--no-wait`, as the
        CLI's release takes it): the agent starts working on `prompt` (and `images`)."""
        if len(prompt.encode("utf-8")) > MAX_RUN_PROMPT_BYTES:
            raise PaseoError(
                "PROMPT_TOO_LONG",
                f"a session's first prompt is passed to `paseo run` as an argument and may be at "
                f"most {MAX_RUN_PROMPT_BYTES} bytes; send a shorter first prompt",
            )
        no_wait = (await self.cli_features()).run_no_wait_flag
        args = ["run", no_wait, "--json", f"--provider={agent.provider}", f"--cwd={agent.cwd}"]
        for flag, value in (
            ("title", agent.title),
            ("model", agent.model),
            ("mode", agent.mode),
            ("thinking", agent.thinking),
        ):
            if value:
                args.append(f"--{flag}={value}")
        args += [f"--label={key}={value}" for key, value in agent.labels.items()]
        with _image_files(images) as paths:
            args += [f"--image={path}" for path in paths]
            result = await self.runner.run([*args, "--", prompt])
        return parse_json(result, CliCreatedAgent).to_gateway()

    # --- turns ---------------------------------------------------------------------------------

    async def start_agent_turn(
        self,
        agent: NewAgent,
        prompt: str,
        *,
        turn_key: str | None = None,
        media: PromptMedia = NO_MEDIA,
    ) -> AsyncIterator[TurnEvent]:
        # The CLI cannot hand Paseo a message id: `turn_key` is unused, prompts match by text.
        _check_media(media)
        yield TurnStarted()
        created = await self.create_agent(agent, prompt, media.images)
        yield AgentStarted(created)
        # `run` returning at once answers once the daemon has recorded the first prompt.
        yield PromptDelivered()
        async for event in self._follow_turn(created.agent_id, prompt, mode="new"):
            yield event

    async def prompt_agent_turn(
        self,
        agent_id: str,
        prompt: str,
        *,
        turn_key: str | None = None,
        media: PromptMedia = NO_MEDIA,
    ) -> AsyncIterator[TurnEvent]:
        _check_media(media)
        async for event in self._follow_turn(agent_id, prompt, mode="send", images=media.images):
            yield event

    async def resume_agent_turn(
        self, agent_id: str, prompt: str, cursor: str | None, *, turn_key: str | None = None
    ) -> AsyncIterator[TurnEvent]:
        async for event in self._follow_turn(agent_id, prompt, mode="resume", cursor=cursor):
            yield event

    async def _follow_turn(
        self,
        agent_id: str,
        prompt: str,
        *,
        mode: _FollowMode,
        cursor: str | None = None,
        images: tuple[PromptImage, ...] = (),
    ) -> AsyncIterator[TurnEvent]:
        """Stream one turn: attach for live output, a blocking send/wait for its end, then logs.

        `new`: the agent was just created with this prompt, so all attach shows is this turn.
        `send`: attach first replays the history; the prompt is sent once that replay is over,
        so what follows is the new turn. `resume`: the turn is already running; the replay's
        text beyond `cursor` (see `Reply`) is what nobody has stored yet. In `new` and
        `resume` attach joins a running turn and can lose the live output that arrived with
        its replay: a second attach checks it (`attach_gap.checked`; one more CLI call).
        """
        reply = Reply()
        first = _FIRST_PROMPT[mode]
        scope = _TurnScope(prompt, inside=mode == "resume", first=first)
        delivered = mode != "send"
        async with self.runner.spawn(["attach", "--", agent_id]) as attach:
            parser = AttachParser(prompt, expect_header=mode == "new", first=first)
            replayed: list[TurnEvent] | None = None
            if mode != "new":
                replay = await _read_replay(attach)
                if mode == "resume":
                    items = _replayed_turn(replay, prompt, first)
                    if reply.resume(items, cursor):
                        replayed = items
                    else:
                        logger.warning("cannot line up the replayed turn with what was stored")
                yield TurnStarted()
            asked: asyncio.Queue[TurnEvent] = asyncio.Queue()
            finisher = asyncio.create_task(
                self._finish_turn(agent_id, prompt, mode == "send", asked, images)
            )
            events = _live_events(attach, parser, scope, finisher, asked)
            if mode == "new" or replayed is not None:
                # Attach joined a running turn: it may have lost what came with its replay.
                events = attach_gap.checked(
                    events,
                    lambda codes: attach_gap.SecondAttach(
                        self.runner, agent_id, prompt, first, codes
                    ),
                    replayed=replayed,
                )
            try:
                async with contextlib.aclosing(events):
                    async for event in events:
                        if isinstance(event, AgentNotice) and event.kind in _PERMISSION_NOTICES:
                            continue  # the finisher reports requests as data (`asked`)
                        if isinstance(event, PromptDelivered):
                            if delivered:
                                continue  # `run` already said so
                            delivered = True
                        elif isinstance(event, TurnOutput):
                            shown = reply.take(event)
                            if shown is None:
                                continue  # stored before a restart (resume)
                            event = shown
                        yield event
                outcome: TurnOutcome
                if scope.superseded:
                    outcome, message = "interrupted", "another prompt replaced this turn"
                else:
                    outcome, message = finisher.result()
                    if not delivered:
                        delivered = True  # send answered: the daemon accepted the prompt
                        yield PromptDelivered()
            finally:
                await cancel_and_wait(finisher)  # still running: the turn was left early
        if scope.superseded:
            yield TurnEnded(outcome, message, reply.text)
            return
        (rest, problem), usage = await asyncio.gather(
            self._missing_tail(agent_id, prompt, reply, first), self._last_usage(agent_id)
        )
        if rest:
            yield reply.add(rest)
        if problem:
            yield AgentNotice("error", problem)
        yield TurnEnded(outcome, message, reply.text, usage)

    async def _finish_turn(
        self,
        agent_id: str,
        prompt: str,
        send_prompt: bool,
        asked: asyncio.Queue[TurnEvent],
        images: tuple[PromptImage, ...] = (),
    ) -> tuple[TurnOutcome, str]:
        """Start the turn (if asked) and block until Paseo says it ended; while the agent
        waits for a permission, put its requests (and their resolution) on `asked`."""
        result: CliSendResult | CliWaitResult
        if send_prompt:
            result = await self._send_and_wait(agent_id, prompt, images)
        else:
            result = await self._wait(agent_id)
        # `send` gives up after a hard-coded 600 s; a turn may go on much longer. `wait`
        # answers at once while a permission is pending: wait for its answer first.
        while result.status in ("timeout", "permission"):
            if result.status == "permission":
                await self._until_answered(agent_id, asked)
            result = await self._wait(agent_id)
        outcome = _WAIT_STATUS_TO_OUTCOME.get(result.status)
        if outcome is None:
            raise PaseoError("BAD_OUTPUT", f"unknown turn status {result.status!r} from paseo")
        # `wait` appends a preview of the transcript to its message; keep the status line.
        return outcome, result.message.split("\n", 1)[0]

    async def _until_answered(self, agent_id: str, asked: asyncio.Queue[TurnEvent]) -> None:
        """Announce the agent's pending requests, then look again (every
        PERMISSION_POLL_SECONDS, or at once when this client answers one) until none is.
        A look is one `inspect`; `permit ls` only describes a request not announced yet."""
        announced: set[str] = set()
        while True:
            pending = (await self.inspect_agent(agent_id)).pending_permissions
            ids = {request.id for request in pending}
            for gone in sorted(announced - ids):
                asked.put_nowait(PermissionResolved(gone))
            new = [request for request in pending if request.id not in announced]
            for request in await self._describe(agent_id, new):
                asked.put_nowait(PermissionRequested(request))
            announced = ids
            if not ids:
                return
            answered = self._answered.setdefault(agent_id, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PERMISSION_POLL_SECONDS):
                    await answered.wait()
            answered.clear()

    async def _send_and_wait(
        self, agent_id: str, prompt: str, images: tuple[PromptImage, ...] = ()
    ) -> CliSendResult:
        with _prompt_file(prompt) as path, _image_files(images) as image_paths:
            args = ["send", "--json", f"--prompt-file={path}"]
            args += [f"--image={image}" for image in image_paths]
            return await self._long_call([*args, "--", agent_id], CliSendResult)

    async def _wait(self, agent_id: str) -> CliWaitResult:
        result = await self._long_call(["wait", "--json", "--", agent_id], CliWaitResult)
        if result.status == "error" and result.message.startswith("Agent not found"):
            # `wait` reports an unknown agent as a turn error with exit 0.
            raise PaseoError("AGENT_NOT_FOUND", result.message, exit_status=0)
        return result

    async def _long_call(self, args: list[str], model: type[_ResultT]) -> _ResultT:
        """A call that lasts as long as the turn: outside the short-call semaphore, no timeout."""
        async with self.runner.spawn(args) as child:
            stdout = await child.read_all_stdout()
            status = await child.wait()
        return parse_json(
            CliResult(child.args, status, stdout.decode("utf-8", "replace"), child.stderr_text()),
            model,
        )

    async def _missing_tail(
        self, agent_id: str, prompt: str, reply: Reply, first: bool | None
    ) -> tuple[str, str | None]:
        """What the transcript has beyond what attach delivered (attach may lose the end),
        and what to tell the client when the transcript does not go on from the streamed
        text (what was shown cannot be taken back; the transcript has the whole answer).

        `logs` trims blocks, so it is compared word for word; only when it has more is the
        exact text read from `attach`'s replay.
        """
        if not reply.lined_up:
            return "", None  # where the stored text ends in the transcript is unknown
        try:
            logged = last_reply(await self.read_logs(agent_id), prompt)
            if logged is None or same_words(logged, reply.text):
                return "", None
            transcript = await self._faithful(agent_id, prompt, logged, first)
        except PaseoError as exc:
            logger.warning("could not read logs of agent %s: %s", agent_id, exc)
            return "", None
        if not transcript.startswith(reply.text):
            logger.warning("the transcript of agent %s does not extend what was streamed", agent_id)
            return "", UNFAITHFUL_REPLY_NOTICE.format(agent_id=agent_id)
        return transcript[len(reply.text) :], None

    async def _last_usage(self, agent_id: str) -> Usage | None:
        try:
            return (await self.inspect_agent(agent_id)).last_usage
        except PaseoError as exc:
            logger.warning("could not read usage of agent %s: %s", agent_id, exc)
            return None

    async def aclose(self) -> None:
        await self.runner.aclose()


class _TurnScope:
    """Keeps one turn's events: those after its own `[User]` line and before any next one.

    Only a `[User]` line with this turn's prompt opens the scope, so stray history (a replay
    that arrived late) is never taken for the answer; opening it yields `PromptDelivered`,
    since that line is Paseo's record of the prompt.
    """

    def __init__(self, prompt: str, *, inside: bool, first: bool | None) -> None:
        self.forms = recorded_forms(prompt, first=first)
        self.inside = inside
        self.superseded = False

    def take(self, items: list[ParsedItem]) -> list[TurnEvent]:
        kept: list[TurnEvent] = []
        for item in items:
            if isinstance(item, PromptSeen):
                if self.inside:
                    self.superseded = True  # another prompt took the agent over
                    break
                self.inside = item.text in self.forms
                if self.inside:
                    kept.append(PromptDelivered())
            elif self.inside:
                kept.append(item)
        return kept


async def _read_replay(attach: ChildProcess) -> bytes:
    """Consume the attach header and the replayed history after it; return that history."""
    seen = b""
    try:
        async with asyncio.timeout(ATTACH_HEADER_TIMEOUT_SECONDS):
            while HEADER_END.encode() not in seen:
                chunk = await attach.read_chunk()
                if not chunk:
                    raise _attach_failed(attach, await attach.wait())
                seen += chunk
    except TimeoutError:
        raise PaseoError(
            "CLI_TIMEOUT",
            f"paseo attach printed nothing within {ATTACH_HEADER_TIMEOUT_SECONDS:g} s",
            stderr=attach.stderr_text(),
        ) from None
    replay = bytearray(seen.split(HEADER_END.encode(), 1)[1])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + REPLAY_MAX_SECONDS
    while loop.time() < deadline:
        # The history is fetched after the header: wait longer for its first bytes (an agent
        # that exists has at least the prompt that created it), then for a quiet moment.
        quiet = REPLAY_QUIET_SECONDS if replay else REPLAY_FIRST_BYTES_SECONDS
        more = await _read_within(attach, quiet)
        if more is None:
            break
        if not more:
            raise _attach_failed(attach, await attach.wait())
        replay += more
    return bytes(replay)


async def _read_within(attach: ChildProcess, seconds: float) -> bytes | None:
    """The next stdout chunk, or None after `seconds` of silence.

    `asyncio.timeout`, not `wait_for`: on Python 3.11 `wait_for` can swallow the caller's own
    cancellation (an outer limit) when the read completes as its timer fires.
    """
    try:
        async with asyncio.timeout(seconds):
            return await attach.read_chunk()
    except TimeoutError:
        return None


def _replayed_turn(replay: bytes, prompt: str, first: bool | None) -> list[TurnEvent] | None:
    """The replayed events of the last turn, if that turn is `prompt`'s."""
    parser = AttachParser(prompt, expect_header=False, first=first)
    items: list[TurnEvent] = []
    latest_prompt: str | None = None
    for item in [*parser.feed(replay), *parser.finish()]:
        if isinstance(item, PromptSeen):
            items, latest_prompt = [], item.text
        else:
            items.append(item)
    if latest_prompt not in recorded_forms(prompt, first=first):
        return None
    return items


def _replayed_reply(replay: bytes, prompt: str, first: bool | None) -> str | None:
    """The replayed text of the last turn, if that turn is `prompt`'s."""
    items = _replayed_turn(replay, prompt, first)
    if items is None:
        return None
    return "".join(item.text for item in items if isinstance(item, TextDelta))


async def _live_events(
    attach: ChildProcess,
    parser: AttachParser,
    scope: _TurnScope,
    finisher: asyncio.Task[tuple[TurnOutcome, str]],
    asked: asyncio.Queue[TurnEvent],
) -> AsyncGenerator[TurnEvent, None]:
    """Attach's events of this turn (and the finisher's permission events from `asked`)
    until the turn has ended and attach has gone quiet.

    Stops early, with `scope.superseded` set, when another prompt takes the agent over.
    """
    reader: asyncio.Task[bytes] | None = asyncio.create_task(attach.read_chunk())
    question: asyncio.Task[TurnEvent] = asyncio.create_task(asked.get())
    try:
        # Until the turn ends; permission events go on even if attach ended early.
        while not finisher.done():
            waiting: set[asyncio.Future[Any]] = {finisher, question}
            if reader is not None:
                waiting.add(reader)
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if question.done():
                yield question.result()
                question = asyncio.create_task(asked.get())
            if reader is not None and reader.done():
                chunk = reader.result()
                for event in scope.take(parser.feed(chunk) if chunk else []):
                    yield event
                if scope.superseded:
                    return
                reader = asyncio.create_task(attach.read_chunk()) if chunk else None
        for event in await _left_in(asked, question):
            yield event
        await finisher  # a failed send/wait ends the turn with its error
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_MAX_SECONDS
        while reader is not None and not scope.superseded:
            # Before the header, attach is still starting (about a CLI start-up): wait longer.
            quiet = DRAIN_QUIET_SECONDS if parser.header_seen else DRAIN_MAX_SECONDS
            done, _ = await asyncio.wait({reader}, timeout=min(quiet, deadline - loop.time()))
            if not done:
                break
            chunk = reader.result()
            for event in scope.take(parser.feed(chunk) if chunk else []):
                yield event
            reader = asyncio.create_task(attach.read_chunk()) if chunk else None
        for event in scope.take(parser.finish()):
            yield event
    finally:
        await cancel_and_wait(question)
        if reader is not None:
            await cancel_and_wait(reader)


async def _left_in(
    asked: asyncio.Queue[TurnEvent], question: asyncio.Task[TurnEvent]
) -> list[TurnEvent]:
    """Stop reading `asked`: what `question` took from it (if anything), then what is left."""
    await cancel_and_wait(question)
    left = [] if question.cancelled() else [question.result()]
    while not asked.empty():
        left.append(asked.get_nowait())
    return left


def _attach_failed(attach: ChildProcess, status: int) -> PaseoError:
    result = CliResult(attach.args, status, "", attach.stderr_text())
    return error_from_result(result, text_code="ATTACH_FAILED")


def _check_media(media: PromptMedia) -> None:
    """The CLI takes images (`--image`), not attachments: refuse before anything is run."""
    if media.attachments:
        raise PaseoError(
            "MEDIA_UNSUPPORTED",
            "the paseo CLI cannot send attachments; use the daemon transport",
        )


@contextlib.contextmanager
def _image_files(images: tuple[PromptImage, ...]) -> Iterator[list[str]]:
    """Each image in a private temporary file named with its type's extension (the CLI
    reads an image's type from its file name), removed afterwards."""
    if not images:
        yield []
        return
    with tempfile.TemporaryDirectory(prefix="paseo-images-") as folder:
        paths = []
        for index, image in enumerate(images):
            path = Path(folder) / f"image-{index}{IMAGE_EXTENSIONS[image.media_type]}"
            path.write_bytes(image.data)
            paths.append(str(path))
        yield paths


@contextlib.contextmanager
def _prompt_file(prompt: str) -> Iterator[str]:
    """The prompt in a private temporary file: no argv size limit, never parsed as a flag."""
    fd, path = tempfile.mkstemp(prefix="paseo-prompt-", suffix=".txt")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(prompt)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
