"""Where agents may work: a session's folder must be inside a configured workspace root, and
exist there as a directory where the gateway can see the daemon's files.

The check resolves symlinks, so it is made when a session is created and again just before
its agent is: a folder swapped for a symlink in between (to /etc, say) is refused then.

The roots are paths on the daemon's machine. The gateway may run elsewhere (a container, one
gateway for several build machines), so it only checks that a folder exists under a root it
can see: one that is a directory here too (same machine, or mounted at the same path). Under
a root it cannot see, the path alone is checked and the daemon refuses a folder it lacks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import PurePosixPath

from app.errors import CwdNotADirectory, CwdNotFound, InvalidInput


def confine(cwd: str, roots: Sequence[str]) -> str:
    """`cwd` resolved (symlinks followed), if it is inside one of `roots`; else 422."""
    if ".." in PurePosixPath(cwd).parts:
        raise InvalidInput("cwd must not contain '..'", field="cwd")
    if inside_roots(cwd, roots):
        return os.path.realpath(cwd)
    raise InvalidInput(
        f"cwd {cwd!r} is outside the workspace roots ({', '.join(roots)}); pick a folder "
        "inside one",
        field="cwd",
    )


def inside_roots(cwd: str, roots: Sequence[str]) -> bool:
    """Whether `cwd`, symlinks followed, is one of `roots` or inside one."""
    return _root_of(os.path.realpath(cwd), roots) is not None


def require_directory(resolved: str, roots: Sequence[str]) -> None:
    """422 when `resolved` (a `confine` result) is missing or not a directory, under a root
    the gateway can see (see the module's docstring)."""
    root = _root_of(resolved, roots)
    if root is None or not os.path.isdir(root):
        return  # not the gateway's to see
    if not os.path.exists(resolved):
        raise CwdNotFound(
            f"cwd {resolved!r} does not exist; create the folder first, or pick one inside "
            f"{root!r}",
            field="cwd",
        )
    if not os.path.isdir(resolved):
        raise CwdNotADirectory(
            f"cwd {resolved!r} is a file, not a directory; pick a folder", field="cwd"
        )


def _root_of(resolved: str, roots: Sequence[str]) -> str | None:
    """The first of `roots` (resolved) that is `resolved` or holds it."""
    for root in roots:
        real_root = os.path.realpath(root)
        if resolved == real_root or resolved.startswith(real_root.rstrip("/") + "/"):
            return real_root
    return None
