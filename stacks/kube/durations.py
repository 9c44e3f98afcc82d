"""Go durations ("1h30m", "90s", "500ms", "2160h"): the one parser of the project.

The grammar is Go's `time.ParseDuration`: an optional sign, then one or more
`<decimal><unit>` parts with units ns, us (or µs), ms, s, m, h; "0" alone is zero. A
negative duration is refused here (no spec field of ours may be negative). Callers that
also accept a bare number of seconds say so (`bare_seconds=True`), since Go does not.

Called by stacks.secrets.api (refreshInterval), stacks.certs.policy (duration,
renewBefore) and stacks.reconciler.api (interval, timeout; with `bare_seconds=True`).
"""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # U+00B5 micro sign
    "μs": 1e-6,  # U+03BC Greek mu: Go accepts both
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


class DurationError(ValueError):
    """Not a Go duration; callers wrap it into their own error with the field's name."""


def parse_seconds(text: str, bare_seconds: bool = False) -> float:
    """Seconds in the Go duration `text`; DurationError when it is not one."""
    raw = text.strip()
    if raw.startswith("+"):
        raw = raw[1:]
    if raw == "0":
        return 0.0
    if bare_seconds:
        try:
            value = float(raw)
        except ValueError:
            pass
        else:
            if value >= 0:
                return value
    total = 0.0
    position = 0
    for match in _PART.finditer(raw):
        if match.start() != position:
            break
        total += float(match.group(1)) * UNITS[match.group(2)]
        position = match.end()
    if not raw or position != len(raw):
        raise DurationError(f"{text.strip()!r} is not a duration such as 1h, 15m or 30s")
    return total
