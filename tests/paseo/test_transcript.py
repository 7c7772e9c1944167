"""Reading the last reply out of recorded `paseo logs` transcripts."""

from __future__ import annotations

from app.paseo.transcript import last_reply
from tests.samples import cli_sample


def test_last_of_two_instant_turns() -> None:
    out, _, _ = cli_sample("logs_fast2")
    assert last_reply(out, "emit 2 coalesced agent stream updates") == (
        "stress-update-0stress-update-1"
    )


def test_tool_and_thought_lines_are_not_reply_text() -> None:
    out, _, _ = cli_sample("logs")
    reply = last_reply(out, "Say hello")
    assert reply is not None
    assert reply.startswith("## Cycle 1\n\nI'll take a look")
    assert "[Thought]" not in reply and "[Read]" not in reply and "[Shell]" not in reply
    assert "relevant files.Now I have a clearer picture" in reply
    assert reply.endswith("_(end of synthetic stream)_")


def test_no_user_item_means_no_reply() -> None:
    assert last_reply("No activity to display.\n", "hi") is None


def test_multiline_prompt_and_task_list() -> None:
    transcript = "[User] fix\nthe bug\n[Tasks]\n- [x] read\n- [ ] edit\ndone.\n"
    assert last_reply(transcript, "fix\nthe bug") == "done."
