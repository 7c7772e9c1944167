"""Access to the recorded output of the real paseo CLI in ../shared/paseo-samples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# A copy of the recordings lives in the repository so the suite runs anywhere.
SAMPLES = Path(__file__).resolve().parent / "fixtures" / "paseo-samples"


def cli_sample(name: str) -> tuple[str, str, int]:
    """(stdout, stderr, exit status) of one recorded invocation."""
    base = SAMPLES / "cli" / name
    out = base.with_suffix(".out").read_text()
    err_path = base.with_suffix(".err")
    err = err_path.read_text() if err_path.exists() else ""
    rc_path = base.with_suffix(".rc")
    rc = int(rc_path.read_text().strip()) if rc_path.exists() else 0
    return out, err, rc


def stream_sample(name: str) -> list[dict[str, Any]]:
    """The rows of a recorded turn (streams/NAME.jsonl)."""
    path = SAMPLES / "streams" / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def process_output(
    rows: list[dict[str, Any]], proc: str, fd: str = "stdout"
) -> list[dict[str, Any]]:
    return [row for row in rows if row.get("proc") == proc and row.get("fd") == fd]
