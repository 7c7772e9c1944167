"""How Paseo records a prompt, so a turn is found by Paseo's record of it.

The daemon trims a session's first prompt (create's `initialPrompt`) like JavaScript's
`String.prototype.trim()`, and records a later prompt (`send`, over the CLI's prompt file or
the WebSocket) exactly as sent. `logs` trims every block it prints, so a transcript shows
both trimmed. Python's `str.strip()` is not JS `trim()`: it also strips U+001C..U+001F and
U+0085, and keeps U+FEFF.
"""

from __future__ import annotations

# ECMAScript WhiteSpace and LineTerminator code points.
JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def js_trim(text: str) -> str:
    """`text.trim()` as JavaScript does it (how `logs` shows a prompt, and a first prompt is
    recorded)."""
    return text.strip(JS_WHITESPACE)


def recorded_forms(prompt: str, *, first: bool | None) -> tuple[str, ...]:
    """The text(s) Paseo's `[User]` record of `prompt` may carry, longest first.

    `first`: True for a session's first prompt (trimmed), False for a later one (as sent),
    None when it is not known which (a turn resumed after a restart): either.
    """
    if first is True:
        return (js_trim(prompt),)
    if first is False:
        return (prompt,)
    return tuple(dict.fromkeys((prompt, js_trim(prompt))))
