#!/usr/bin/env python3
"""Summarise py-spy's collapsed stacks: the top frames, inclusive and self, and self time by
package.

Reads the files `--profile DIR` of benchmarks/list_sessions.py and benchmarks/ratios.py write
(`py-spy record --format raw`: one stack a line, `outer;...;inner count`, each frame
`function (file:line)`). A frame is named without its line unless --lines, so a function's
samples add up whatever line they were on; inclusive counts a frame once per stack (recursion
does not count twice). SQLAlchemy's async layer runs the ORM in greenlets, which py-spy sees
as stacks of their own (starting at `Session.execute` and the like, without the request's
frames above them): read those with `--focus sqlalchemy/orm`, and a route's inclusive share as
a lower bound.

    .venv/bin/python benchmarks/profile_summary.py /tmp/prof/sqlite-sessions.collapsed
    .venv/bin/python benchmarks/profile_summary.py /tmp/prof/*.collapsed --top 15
    .venv/bin/python benchmarks/profile_summary.py /tmp/prof/postgresql-sessions.collapsed \\
        --focus 'app/api/sessions.py'      # only the stacks that went through that file
    .venv/bin/python benchmarks/profile_summary.py FILE --exclude _connection_worker_thread

Not a test, and not a benchmark of its own.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

# `function (path/to/file.py:123)` -> `function (path/to/file.py)`
_LINE = re.compile(r":\d+\)$")


# Frames under every request: the process's start, uvicorn's and the event loop's own. Left
# out of "inclusive", where they would fill the top rows.
SCAFFOLDING = (
    "_run_module_as_main (",
    "_run_code (",
    "<module> (app/__main__.py",
    "main (app/cli.py",
    "_serve (app/cli.py",
    "run (uvicorn/main.py",
    "Server.run (",
    "asyncio_run (",
    "Runner.run (",
    "BaseEventLoop.run_until_complete (",
    "BaseEventLoop.run_forever (",
    "BaseEventLoop._run_once (",
    "Handle._run (",
    "Thread.",
)


def read_stacks(path: Path, *, lines: bool) -> Counter[tuple[str, ...]]:
    """Each distinct stack (outermost frame first) and its samples."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for row in path.read_text(errors="replace").splitlines():
        stack, _, count = row.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if not lines:
            frames = [_LINE.sub(")", frame) for frame in frames]
        stacks[tuple(frames)] += int(count)
    return stacks


def file_of(frame: str) -> str:
    """`Class.method (sqlalchemy/orm/query.py)` -> `sqlalchemy/orm/query.py`."""
    return frame.rpartition(" (")[2].rstrip(")").split(":")[0]


def package_of(frame: str) -> str:
    """Where a frame's code lives: `app/api/sessions.py` for the app's own files, else the
    top-level package (`sqlalchemy`, `pydantic`, `asyncio`, ...)."""
    path = file_of(frame)
    if path.startswith("app/"):
        return path
    return path.split("/", 1)[0].removesuffix(".py") or path


def thread_of(frames: tuple[str, ...]) -> str:
    """`main` (the event loop's thread), or the first frame of a thread started by
    `threading` (`_connection_worker_thread (aiosqlite/core.py)` for aiosqlite's)."""
    for frame in frames:
        if file_of(frame) != "threading.py":
            return "main" if frame is frames[0] else frame
    return frames[-1]


def summarise(stacks: Counter[tuple[str, ...]], top: int) -> list[str]:
    """Samples by thread, then the top frames inclusive (those on every stack of their
    thread, like `main` or the event loop, left out), self, and self by package."""
    total = sum(stacks.values())
    threads: Counter[str] = Counter()
    inclusive: Counter[tuple[str, str]] = Counter()
    own: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    for frames, count in stacks.items():
        thread = thread_of(frames)
        threads[thread] += count
        for frame in set(frames):
            inclusive[thread, frame] += count
        own[frames[-1]] += count
        by_package[package_of(frames[-1])] += count
    telling: Counter[str] = Counter()
    for (thread, frame), count in inclusive.items():
        if count < threads[thread] and not frame.startswith(SCAFFOLDING):
            telling[frame] += count

    def table(title: str, counts: Counter[str]) -> list[str]:
        out = [f"  {title}"]
        for name, count in counts.most_common(top):
            out.append(f"    {100 * count / total:5.1f} %  {count:>7}  {name}")
        return out

    return [
        f"  {total} samples",
        *table("by thread (a waiting worker thread samples as busy in its loop frame):", threads),
        *table("inclusive (the frame or anything it called):", telling),
        *table("self (the frame itself, on top of the stack):", own),
        *table("self by package (the app's files one by one):", by_package),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("files", nargs="+", type=Path, help="collapsed-stack files")
    parser.add_argument("--top", type=int, default=20, help="rows per table")
    parser.add_argument("--focus", help="only stacks with a frame containing this text")
    parser.add_argument("--exclude", help="leave out stacks with a frame containing this text")
    parser.add_argument("--lines", action="store_true", help="keep line numbers in frames")
    args = parser.parse_args(argv)
    status = 0
    for path in args.files:
        try:
            stacks = read_stacks(path, lines=args.lines)
        except OSError as error:
            print(f"{path}: {error}", file=sys.stderr)
            status = 1
            continue
        if args.focus:
            stacks = Counter(
                {s: n for s, n in stacks.items() if any(args.focus in frame for frame in s)}
            )
        if args.exclude:
            stacks = Counter(
                {s: n for s, n in stacks.items() if not any(args.exclude in f for f in s)}
            )
        print(f"{path}" + (f" (stacks through {args.focus!r})" if args.focus else ""))
        print("\n".join(summarise(stacks, args.top)) if stacks else "  no samples")
    return status


if __name__ == "__main__":
    sys.exit(main())
