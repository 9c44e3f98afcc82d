"""Sizes and budgets that keep hostile input from filling the git server's disk.

waitress buffers every request body (in memory up to `INBUF_MEMORY`, then in a file
under TMPDIR) before the application sees it. In the cluster TMPDIR is an emptyDir whose
`sizeLimit` is `SCRATCH_SIZE` (manifests/20-deployment.yaml; a unit test holds them
equal): a pod that writes more is evicted. So the bodies buffered at once, all together,
may use at most `--max-body-size` (default `DEFAULT_MAX_BODY`, the scratch space less a
headroom for git's own temporary files), and `ScratchBudget` enforces that total.
`guard.py` reserves from the budget as bodies arrive; `program.py` parses the flag with
`parse_size()`.
"""

from __future__ import annotations

import re
import threading

MiB = 1024**2
GiB = 1024**3

SCRATCH_SIZE = 2 * GiB  # the emptyDir sizeLimit of /tmp in the Deployment: "2Gi"
SCRATCH_HEADROOM = 256 * MiB  # git's temporary files, inflated gzip bodies, stderr files
DEFAULT_MAX_BODY = SCRATCH_SIZE - SCRATCH_HEADROOM
INBUF_MEMORY = 512 * 1024  # per body, before waitress moves it to a file
MAX_INFLATED = 64 * MiB  # a gzip request body may inflate to at most this (fetch negotiation)

_UNITS = {"": 1, "k": 1000, "ki": 1024, "m": 1000**2, "mi": MiB, "g": 1000**3, "gi": GiB}
_SIZE = re.compile(r"\s*(\d+)\s*([kmg]i?)?b?\s*", re.IGNORECASE)


def parse_size(text: str) -> int:
    """`1536Mi`, `2Gi`, `500M`, `1048576` -> bytes (Kubernetes quantity suffixes)."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size such as 1536Mi, 2Gi or 1048576")
    return int(match[1]) * _UNITS[(match[2] or "").lower()]


class ScratchBudget:
    """Bytes of request body buffered right now, over all connections, with a ceiling."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        with self._lock:
            return self._used

    def reserve(self, size: int) -> bool:
        """Take `size` bytes; False (nothing taken) when that would pass the ceiling."""
        with self._lock:
            if self._used + size > self.limit:
                return False
            self._used += size
            return True

    def release(self, size: int) -> None:
        with self._lock:
            self._used = max(0, self._used - size)
