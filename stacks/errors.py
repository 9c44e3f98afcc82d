"""The error tree every component and stage raises, so callers know what to do next.

    PlatformError            anything this project raises on purpose; has `hint`
    ├── PermanentError       stop: a person must act (the hint says how)
    ├── WaitingError         not ready yet: come back after `retry_after` seconds
    └── TransientError       a hiccup (connection reset, 5xx, conflict): retry with backoff

Adapters (the only modules that import kubernetes, hvac, docker, git, python_terraform)
wrap library errors into these with `raise ... from error`, trimming payloads so that no
secret value travels in a message. The stage runner and the controllers' requeue logic
decide on retries from the class alone.
"""

from __future__ import annotations


class PlatformError(Exception):
    """Base class. `str(error)` is the cause; `hint` is the next step for a person."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class PermanentError(PlatformError):
    """Retrying will not help; a person must change something (see `hint`)."""


class WaitingError(PlatformError):
    """Something is still converging; ask again after `retry_after` seconds."""

    def __init__(self, message: str, hint: str = "", retry_after: float = 5.0) -> None:
        super().__init__(message, hint)
        self.retry_after = retry_after


class TransientError(PlatformError):
    """A temporary failure (network, 5xx, conflict); retry with backoff."""


def trim(text: str, limit: int = 300) -> str:
    """Shorten an upstream error body for a message; long bodies are noise, not cause."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
