"""Keep client-controlled text from forging or breaking log lines.

A request path like `/x%0d%0a<forged line>` arrives decoded, with a real CR LF in it.
`escape()` turns control characters (and the backslash, so that escaping is
unambiguous) into visible escapes; `app.py` applies it to every client-controlled field
of the access log. `EscapingFilter` is the second line of defence: `program.py` puts it on
every log handler, so no message of any logger (waitress's included) can carry a raw
control character. Tracebacks keep their line breaks: they are ours, not the client's.
"""

from __future__ import annotations

import logging
import re

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\\\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _replace(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str, limit: int = 300) -> str:
    """`text` on one line with control characters escaped; cut to `limit` characters."""
    escaped = _UNSAFE.sub(_replace, text[:limit])
    return escaped + ("..." if len(text) > limit else "")


class EscapingFilter(logging.Filter):
    """Escapes control characters in every record's message (not in its traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _UNSAFE.search(message.replace("\\", "")):
            record.msg, record.args = _UNSAFE.sub(_replace, message), None
        return True
