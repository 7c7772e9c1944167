"""Reading a `paseo logs` transcript: which prompts it records, and the reply to the last one.

`logs` prints one timeline item per line: `[User] ...`, assistant text (merged chunks, possibly
spanning lines), `[Thought] ...`, `[<Tool>] summary`, `[Tasks]` with `- [x] item` lines,
`[Error] ...`, `[Compacted]`. Consecutive assistant items are printed joined with no separator,
which is also how `attach` streams them, so the reply is the assistant lines of the last turn.
Paseo trims each block it prints (the prompt of a `[User]` item too), so whitespace at the
edges of a block is lost here; `attach` keeps it.
"""

from __future__ import annotations

import re

from app.paseo.prompts import js_trim
from app.paseo.types import PromptHistory

NO_ACTIVITY = "No activity to display."
_USER_PREFIX = "[User] "
# A bracketed label alone or followed by a space: `[Read] path`, `[Compacted]`. A markdown link
# (`[text](url)`) does not match.
_ITEM_LINE = re.compile(r"^\[[A-Za-z][A-Za-z0-9 _.:/-]*\](?: |$)")
_TASK_LINE = re.compile(r"^- \[[ xX]\] ")


def prompt_history(transcript: str, prompt: str) -> PromptHistory:
    """What the transcript records of `prompt`, from one reading of it."""
    users = _user_items(transcript.split("\n"), prompt)
    return PromptHistory(
        times_recorded=sum(1 for _, is_prompt in users if is_prompt),
        latest_is_this_prompt=bool(users) and users[-1][1],
    )


def last_reply(transcript: str, prompt: str) -> str | None:
    """The assistant text of the transcript's last turn, if that turn is `prompt`'s: a reply
    counts only if it follows this turn's own prompt."""
    lines = transcript.split("\n")
    users = _user_items(lines, prompt)
    if not users or not users[-1][1]:
        return None
    return _assistant_text(lines[users[-1][0] :])


def times_recorded(transcript: str, prompt: str) -> int:
    """How many `[User]` items of the transcript carry `prompt` (as Paseo records it)."""
    return prompt_history(transcript, prompt).times_recorded


def latest_is(transcript: str, prompt: str) -> bool:
    """Whether the transcript's last `[User]` item is `prompt`."""
    return prompt_history(transcript, prompt).latest_is_this_prompt


def _user_items(lines: list[str], prompt: str) -> list[tuple[int, bool]]:
    """Each `[User]` item: the index of the line after it, and whether it is `prompt`.

    A `[User]` item of `prompt` spans as many lines as the recorded prompt has.
    """
    prompt_lines = js_trim(prompt).split("\n")
    span = len(prompt_lines)
    items: list[tuple[int, bool]] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.startswith(_USER_PREFIX):
            index += 1
            continue
        first = line[len(_USER_PREFIX) :]
        if [first, *lines[index + 1 : index + span]] == prompt_lines:
            items.append((index + span, True))
            index += span
        else:
            items.append((index + 1, False))
            index += 1
    return items


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
    # The newline `logs` prints after its last line is not reply text.
    return text[:-1] if text.endswith("\n") else text


def same_words(left: str, right: str) -> bool:
    """Whether two renderings of one reply differ at most in whitespace (logs trims blocks)."""
    return _WHITESPACE.sub("", left) == _WHITESPACE.sub("", right)


_WHITESPACE = re.compile(r"\s+")
