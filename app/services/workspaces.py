"""Where agents may work: a session's folder must be inside a configured workspace root.

The check resolves symlinks, so it is made when a session is created and again just before
its agent is: a folder swapped for a symlink in between (to /etc, say) is refused then.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import PurePosixPath

from app.errors import InvalidInput


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
    resolved = os.path.realpath(cwd)
    for root in roots:
        real_root = os.path.realpath(root)
        if resolved == real_root or resolved.startswith(real_root.rstrip("/") + "/"):
            return True
    return False
