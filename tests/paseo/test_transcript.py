"""Reading the last reply out of recorded `paseo logs` transcripts."""

from __future__ import annotations

from app.paseo.cli.transcript import last_reply, latest_is, same_words, times_recorded
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


def test_a_reply_counts_only_after_this_turns_own_prompt() -> None:
    """The last turn is another prompt's: its reply is not this prompt's answer."""
    out, _, _ = cli_sample("logs_fast2")
    assert last_reply(out, "emit 9 coalesced agent stream updates") is None
    assert not latest_is(out, "emit 9 coalesced agent stream updates")


def test_prompts_are_matched_as_paseo_records_them() -> None:
    """Paseo trims the prompt; every line of a multi-line one is part of its `[User]` item."""
    transcript = (
        "[User] emit 2 coalesced agent stream updates\nsecond line of the prompt\n"
        "stress-update-0stress-update-1\n"
    )
    prompt = "emit 2 coalesced agent stream updates\nsecond line of the prompt\n"
    assert last_reply(transcript, prompt) == "stress-update-0stress-update-1"
    assert last_reply(transcript, "\n  " + prompt) == "stress-update-0stress-update-1"


def test_times_recorded_counts_each_user_item_of_the_prompt() -> None:
    transcript = "[User] go\none\n[User] other\ntwo\n[User] go\nthree\n"
    assert times_recorded(transcript, "go\n") == 2
    assert times_recorded(transcript, "other") == 1
    assert times_recorded(transcript, "g") == 0
    assert latest_is(transcript, " go ")


def test_same_words_ignores_only_whitespace() -> None:
    assert same_words("## Cycle 1\n\nsome text\n", "## Cycle 1\nsome text")
    assert not same_words("some text", "some texts")
