"""Keep secret values out of logs: a registry of known secrets and a logging filter.

Whoever reads or generates a secret (Vault keys and tokens, git passwords, CA keys)
calls `register(value)`; `RedactingFilter`, installed on every log handler by the CLI and
the component programs, replaces registered values in log records with `***`. This is a
second line of defence: code should not log secrets in the first place.
"""

from __future__ import annotations

import logging
import threading

_secrets: set[str] = set()
_lock = threading.Lock()
MASK = "***"


def register(*values: str) -> None:
    with _lock:
        _secrets.update(v for v in values if v and len(v) >= 4)


def redact(text: str) -> str:
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True
