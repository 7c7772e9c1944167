"""The daemons this gateway serves, by name, and what this process knows of each now.

Which daemon a session lives on is the database's (`sessions.daemon`). Whether a daemon is up
is decided in one place, `daemon_state`, from facts: the daemon transport's socket (open after
its hello: up; closed: down, at once), else the latest check (the CLI's `paseo ls`, in the
background every few seconds). Only an answer that nothing is there (a refused connection,
Paseo's DAEMON_NOT_RUNNING) makes a daemon down; a check that ran out of time on our side
proves nothing (the gateway's own machine may be what is slow): the daemon is `degraded`, and
still takes prompts. A prompt for a daemon that is down makes one immediate attempt to reach it
(`admit`) before it is refused, so a daemon that came back is used at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from app.aio import cancel_and_wait
from app.errors import DaemonUnavailable, UnknownDaemon, from_paseo
from app.metrics import DAEMON_UP
from app.paseo.client import PaseoClient
from app.paseo.daemon_config import DEFAULT_DAEMON
from app.paseo.daemons import Daemon
from app.paseo.errors import PaseoError, PaseoErrorKind
from app.paseo.types import DaemonFacts, DaemonLink

DaemonState = Literal["up", "degraded", "down"]
# What a check found: the daemon answered (`ok`), nothing answers at its address
# (`unreachable`), it answered with another failure (`failed`), or the check ran out of time
# on our side (`slow`: no answer either way).
CheckOutcome = Literal["ok", "unreachable", "failed", "slow"]
Answer = Literal["ok", "unreachable", "failed"]

# What a refusal for a daemon that is down tells the client to wait.
RETRY_DOWN_SECONDS = "10"
# A prompt for a daemon that is down waits this long for one attempt to reach it.
ADMIT_ATTEMPT_SECONDS = 1.0
# A check ends by then whatever the daemon does (a CLI call costs 1-13 s; a hung one must not
# hang readiness).
CHECK_TIMEOUT_SECONDS = 20.0
# A refused connection, in a failure whose code does not say so.
_REFUSED = ("ECONNREFUSED", "connection refused", "Connection refused")
# The CLI's own connect timeout (15 s), which it reports as DAEMON_NOT_RUNNING too.
_TIMED_OUT = ("Connection timeout", "timed out", "ETIMEDOUT")


def daemon_state(link: DaemonLink, answer: Answer | None, slow: bool) -> DaemonState:
    """The daemon's state from what is known now (a pure decision).

    `link`: the transport's connection (after any attempt made for this request); `answer`:
    what the latest check that got an answer found (after any check made for this request);
    `slow`: a check since then ran out of time on our side, or is running late.

    A socket says it all: open is up, closed is down. Without one, only an answer that nothing
    is there is down; a slow or failed check is degraded; anything else (no check yet too) up.
    """
    if link.state != "unknown":
        return "up" if link.state == "connected" else "down"
    if answer == "unreachable":
        return "down"
    if slow or answer == "failed":
        return "degraded"
    return "up"


def check_outcome(error: PaseoError) -> CheckOutcome:
    """What a failed check says: unreachable only when Paseo says nothing answers there (its
    own code, or a refused connection); a time limit ran out on our side (the runner's, or
    the CLI's own connect timeout on a starved machine): slow; anything else: failed."""
    refused = any(text in error.message for text in _REFUSED)
    if error.kind is PaseoErrorKind.TIMEOUT or (
        not refused and any(text in error.message for text in _TIMED_OUT)
    ):
        return "slow"
    if error.kind is PaseoErrorKind.UNAVAILABLE or refused:
        return "unreachable"
    return "failed"


@dataclass(frozen=True)
class DaemonStatus:
    """One daemon as this process knows it now: readiness shows it, admission decides on it."""

    name: str
    state: DaemonState
    reason: str  # what decided the state, in words
    link: DaemonLink
    facts: DaemonFacts | None  # what the latest check that got through learnt
    checked_at: float | None  # when (monotonic) the latest check ended; None: none has


@dataclass
class _Checks:
    """The checks of one daemon: what the latest answer was, and the one under way."""

    answer: Answer | None = None
    said: str = ""  # the answer in words (a failure's code and message)
    facts: DaemonFacts | None = None
    timed_out: str | None = None  # the latest check ran out of time (after `answer`): how
    ended_at: float | None = None
    running: asyncio.Task[None] | None = None
    started_at: float = 0.0
    late_at: float = 0.0

    def ended(self, outcome: CheckOutcome, said: str, facts: DaemonFacts | None = None) -> None:
        self.ended_at = time.monotonic()
        if outcome == "slow":
            self.timed_out = said
            return
        self.answer, self.said, self.timed_out = outcome, said, None
        self.facts = facts or self.facts

    def slowness(self, now: float) -> str | None:
        """Why the checks count as slow now, if they do."""
        if self.running is not None and now >= self.late_at:
            return f"the daemon check has had no answer for {now - self.started_at:.1f} s"
        return self.timed_out


class Daemons:
    """Named daemons in their configured order (placement breaks ties by it)."""

    def __init__(self, daemons: Sequence[Daemon]) -> None:
        if not daemons:
            raise ValueError("a gateway serves at least one daemon")
        self._by_name = {daemon.name: daemon for daemon in daemons}
        self._checks = {daemon.name: _Checks() for daemon in daemons}
        for name in self._by_name:
            DAEMON_UP.labels(daemon=name).set_function(self._up_gauge(name))

    @classmethod
    def single(cls, client: PaseoClient, workspace_roots: Sequence[str] = ()) -> Daemons:
        """The one-daemon gateway: `client` as the daemon every session is on."""
        return cls([Daemon(DEFAULT_DAEMON, client, tuple(workspace_roots))])

    def __iter__(self) -> Iterator[Daemon]:
        return iter(self._by_name.values())

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    def get(self, name: str) -> Daemon:
        """The daemon called `name`; 422 naming the known ones if there is none."""
        daemon = self._by_name.get(name)
        if daemon is None:
            raise UnknownDaemon(
                f"no daemon {name!r}; this gateway serves {', '.join(map(repr, self.names))}",
                field="daemon",
                daemon=name,
            )
        return daemon

    # --- what is known now ----------------------------------------------------------------------

    def status(self, name: str) -> DaemonStatus:
        link = self.get(name).link
        checks = self._checks[name]
        slowness = checks.slowness(time.monotonic())
        state = daemon_state(link, checks.answer, slowness is not None)
        reason = _reason(name, state, link, checks, slowness)
        return DaemonStatus(name, state, reason, link, checks.facts, checks.ended_at)

    def state(self, name: str) -> DaemonState:
        return self.status(name).state

    def any_down(self) -> bool:
        """Whether some daemon is down (while none is, prompts need no admission read)."""
        return any(self.state(name) == "down" for name in self._by_name)

    def _up_gauge(self, name: str) -> Callable[[], float]:
        return lambda: 0.0 if self.state(name) == "down" else 1.0

    # --- finding out ----------------------------------------------------------------------------

    async def check(self, name: str, *, late_after: float = CHECK_TIMEOUT_SECONDS) -> None:
        """Ask the daemon now, or join the check under way; return once it has ended or is
        late (`late_after` s after it began, for a check begun here). A late check goes on:
        what it finds counts once it ends."""
        task = self.start_check(name, late_after=late_after)
        late_at = self._checks[name].late_at
        await asyncio.wait({task}, timeout=max(0.0, late_at - time.monotonic()))
        if task.done() and not task.cancelled():
            task.result()  # a bug in a check is raised, not left in the task

    def start_check(self, name: str, *, late_after: float) -> asyncio.Task[None]:
        """The check under way, or one started now; it is late `late_after` s after it began
        (the soonest any caller asked for)."""
        checks = self._checks[self.get(name).name]
        if checks.running is None:
            checks.started_at = time.monotonic()
            checks.late_at = checks.started_at + late_after
            checks.running = asyncio.create_task(self._run_check(self.get(name), checks))
        checks.late_at = min(checks.late_at, checks.started_at + late_after)
        return checks.running

    async def _run_check(self, daemon: Daemon, checks: _Checks) -> None:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                facts = await daemon.ping()  # a failure names the daemon (and its setting)
        except PaseoError as exc:
            checks.ended(check_outcome(exc), _words(exc))
        except TimeoutError:
            checks.ended("slow", f"the check did not finish within {CHECK_TIMEOUT_SECONDS:g} s")
        else:
            checks.ended("ok", "the daemon answered", facts)
        finally:
            checks.running = None

    async def admit(self, name: str) -> None:
        """Let a prompt for `name` through unless its daemon is down. While it is, one attempt
        to reach it is made now (its socket opened, or, without one, a check), shared with
        concurrent prompts and waited for `ADMIT_ATTEMPT_SECONDS`: a daemon that came back is
        used at once. Still down: 503 with Retry-After (call it before anything is stored)."""
        daemon = self.get(name)
        if self.state(name) != "down":
            return
        if daemon.link.state == "unknown":
            checking = self.start_check(name, late_after=CHECK_TIMEOUT_SECONDS)
            await asyncio.wait({checking}, timeout=ADMIT_ATTEMPT_SECONDS)
        else:
            await daemon.connect(ADMIT_ATTEMPT_SECONDS)
        status = self.status(name)
        if status.state == "down":
            raise DaemonUnavailable(
                f"daemon {name!r} is down ({status.reason}); try again once it is back",
                headers={"Retry-After": RETRY_DOWN_SECONDS},
                daemon=name,
            )

    async def aclose(self) -> None:
        for checks in self._checks.values():
            if checks.running is not None:
                await cancel_and_wait(checks.running)
        await asyncio.gather(*(daemon.aclose() for daemon in self), return_exceptions=True)


def _reason(
    name: str, state: DaemonState, link: DaemonLink, checks: _Checks, slowness: str | None
) -> str:
    """What decided `state`, in words (a failure's as the API would say it, with its fix)."""
    if link.state == "connected":
        return "the WebSocket to the daemon is open"
    if link.state == "disconnected":
        closed = PaseoError("DAEMON_NOT_RUNNING", f"its WebSocket is closed ({link.reason})")
        closed.daemon = name
        return _words(closed)
    if state == "degraded":
        return slowness or checks.said
    if checks.answer is None:
        return "not checked yet"
    return checks.said


def _words(error: PaseoError) -> str:
    return f"{error.code}: {from_paseo(error).detail}"
