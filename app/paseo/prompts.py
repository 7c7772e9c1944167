"""How Paseo records a prompt: trimmed like JavaScript's `String.prototype.trim()`.

The `[User]` item of a turn (in `attach`, in `logs`, in the timeline) shows this text, not
the prompt as sent, so a turn is found by it. Python's `str.strip()` is not the same: it also
strips U+001C..U+001F and U+0085, and keeps U+FEFF.
"""

from __future__ import annotations

# ECMAScript WhiteSpace and LineTerminator code points.
JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def recorded_prompt(prompt: str) -> str:
    """The text Paseo records (and shows in `[User]` items) for `prompt`."""
    return prompt.strip(JS_WHITESPACE)
