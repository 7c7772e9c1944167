"""Reading the assistant's reply to the last prompt out of a `paseo logs` transcript.

`logs` prints one timeline item per line: `[User] ...`, assistant text (merged chunks, possibly
spanning lines), `[Thought] ...`, `[<Tool>] summary`, `[Tasks]` with `- [x] item` lines,
`[Error] ...`, `[Compacted]`. Consecutive assistant items are printed joined with no separator,
which is also how `attach` streams them, so the reply is the assistant lines of the last turn.
"""

from __future__ import annotations

import re

NO_ACTIVITY = "No activity to display."
_USER_PREFIX = "[User] "
# A bracketed label alone or followed by a space: `[Read] path`, `[Compacted]`. A markdown link
# (`[text](url)`) does not match.
_ITEM_LINE = re.compile(r"^\[[A-Za-z][A-Za-z0-9 _.:/-]*\](?: |$)")
_TASK_LINE = re.compile(r"^- \[[ xX]\] ")


def last_reply(transcript: str, prompt: str) -> str | None:
    """The assistant text after the last `[User]` item (the one for `prompt` when found)."""
    lines = transcript.split("\n")
    start = _after_last_user_item(lines, prompt)
    if start is None:
        return None
    return _assistant_text(lines[start:])


def _after_last_user_item(lines: list[str], prompt: str) -> int | None:
    prompt_lines = prompt.split("\n")
    for index in range(len(lines) - 1, -1, -1):
        if not lines[index].startswith(_USER_PREFIX):
            continue
        first = lines[index][len(_USER_PREFIX) :]
        span = len(prompt_lines)
        if [first, *lines[index + 1 : index + span]] == prompt_lines:
            return index + span
        return index + 1
    return None


def _assistant_text(lines: list[str]) -> str:
    parts: list[str] = []
    previous_was_text = False
    in_tasks = False
    for line in lines:
        if _ITEM_LINE.match(line):
            previous_was_text = False
            in_tasks = line.startswith("[Tasks]")
            continue
        if in_tasks and _TASK_LINE.match(line):
            continue
        in_tasks = False
        if previous_was_text:
            parts.append("\n")
        parts.append(line)
        previous_was_text = True
    text = "".join(parts)
    return text[:-1] if text.endswith("\n") else text
