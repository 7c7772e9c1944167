"""Running paseo CLI children: argv lists only, own process group, bounded output, always reaped.

Shutdown order for a child (success, error, timeout or cancellation alike): SIGTERM to its
whole process group, up to TERMINATE_GRACE_SECONDS to exit, then SIGKILL to the group, then
wait() so no zombie is left. Killing the group, not the pid, also ends grandchildren that
would otherwise hold the pipes open.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

from app.aio import shielded
from app.metrics import CLI_DURATION, CLI_RUNNING, CLI_SLOT_WAIT
from app.paseo.errors import PaseoError

logger = logging.getLogger(__name__)

TERMINATE_GRACE_SECONDS = 3.0
READ_CHUNK_BYTES = 64 * 1024
MAX_OUTPUT_BYTES = 64 * 1024 * 1024  # a huge `logs` transcript still fits; garbage does not
MAX_STDERR_BYTES = 1024 * 1024


# Linux's prctl, looked up once here: the child may run no more than a plain call before exec.
_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the gateway dies, even by SIGKILL.

    Without it a killed gateway would leave `paseo attach` children running for ever (attach
    never exits by itself); the turn itself lives on in the daemon and is recovered.
    """
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(frozen=True)
class CliResult:
    args: tuple[str, ...]
    exit_status: int
    stdout: str
    stderr: str


class ChildProcess:
    """One running CLI child whose stdout the caller reads while it runs (attach, send)."""

    def __init__(self, process: asyncio.subprocess.Process, args: Sequence[str]) -> None:
        self.process = process
        self.args = tuple(args)
        self._stderr = bytearray()
        assert process.stderr is not None
        self._stderr_task = asyncio.create_task(self._collect_stderr(process.stderr))

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    async def _collect_stderr(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(READ_CHUNK_BYTES):
            room = MAX_STDERR_BYTES - len(self._stderr)
            if room > 0:
                self._stderr += chunk[:room]

    async def read_chunk(self) -> bytes:
        """Next piece of stdout, or b"" at end of file."""
        assert self.process.stdout is not None
        return await self.process.stdout.read(READ_CHUNK_BYTES)

    async def read_all_stdout(self) -> bytes:
        """The rest of stdout, bounded by MAX_OUTPUT_BYTES."""
        out = bytearray()
        while chunk := await self.read_chunk():
            out += chunk
            if len(out) > MAX_OUTPUT_BYTES:
                raise PaseoError(
                    "OUTPUT_TOO_LARGE",
                    f"paseo printed more than {MAX_OUTPUT_BYTES} bytes",
                    stderr=self.stderr_text(),
                )
        return bytes(out)

    async def wait(self) -> int:
        status = await self.process.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self._stderr_task
        return status

    def stderr_text(self) -> str:
        return self._stderr.decode("utf-8", errors="replace")

    def signal_group(self, sig: signal.Signals) -> None:
        if self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    async def terminate(self, grace: float = TERMINATE_GRACE_SECONDS) -> None:
        """SIGTERM the group, SIGKILL it after `grace`, and reap. Safe to call twice."""
        if self.process.returncode is None:
            self.signal_group(signal.SIGTERM)
            try:
                async with asyncio.timeout(grace):  # not wait_for: see app.aio
                    await self.process.wait()
            except TimeoutError:
                self.signal_group(signal.SIGKILL)
        # Whatever the leader did, end anything it left behind in its group.
        self.signal_group(signal.SIGKILL)
        await self.process.wait()
        self._stderr_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._stderr_task


class CliRunner:
    """Starts paseo children with a fixed binary and environment.

    Short request/response calls share a semaphore of `max_processes`; the long-lived children
    of a turn (attach and the blocking send/wait) are bounded by the caller's turn limit instead,
    so a few long turns can never starve `ls` or `inspect`, nor deadlock each other.
    """

    def __init__(
        self,
        binary: str,
        *,
        env: Mapping[str, str],
        max_processes: int,
        timeout: float,
    ) -> None:
        self.binary = binary
        self.env = dict(env)
        self.timeout = timeout
        self._slots = asyncio.Semaphore(max_processes)
        self._children: set[ChildProcess] = set()

    async def run(self, args: Sequence[str]) -> CliResult:
        """Run one short CLI call to completion under the semaphore and the time limit."""
        limit = self.timeout
        waited = time.monotonic()
        async with self._slots:
            CLI_SLOT_WAIT.observe(time.monotonic() - waited)
            return await self._run_child(args, limit)

    async def _run_child(self, args: Sequence[str], limit: float) -> CliResult:
        async with self.spawn(args) as child:
            try:
                async with asyncio.timeout(limit):
                    stdout = await child.read_all_stdout()
                    status = await child.wait()
            except TimeoutError:
                raise PaseoError(
                    "CLI_TIMEOUT",
                    f"paseo {args[0] if args else ''} did not finish within {limit:g} s",
                    stderr=child.stderr_text(),
                ) from None
            return CliResult(
                child.args, status, stdout.decode("utf-8", errors="replace"), child.stderr_text()
            )

    @contextlib.asynccontextmanager
    async def spawn(self, args: Sequence[str]) -> AsyncIterator[ChildProcess]:
        """Start a child in its own process group; it is terminated and reaped on exit."""
        argv = [self.binary, *args]
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except (FileNotFoundError, PermissionError) as exc:
            raise PaseoError(
                "PASEO_NOT_INSTALLED",
                f"cannot run the paseo CLI {self.binary!r}: {exc.strerror or exc}",
            ) from exc
        child = ChildProcess(process, args)
        self._children.add(child)
        CLI_RUNNING.inc()
        started = time.monotonic()
        try:
            yield child
        finally:
            # Shielded so a cancelled caller still waits for the reap instead of leaking it.
            await shielded(child.terminate())
            self._children.discard(child)
            CLI_RUNNING.dec()
            CLI_DURATION.labels(command=args[0] if args else "").observe(time.monotonic() - started)

    async def aclose(self) -> None:
        """Terminate every child still running (server shutdown)."""
        await asyncio.gather(*(child.terminate() for child in list(self._children)))
