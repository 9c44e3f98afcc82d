"""What a stage is, what it gets, and how it reports progress.

A stage is a small object with a name, the stages it requires, a timeout, and three
methods: `check` (is it done and healthy? cheap, read-only), `plan` (what `run` would
change, for --dry-run) and `run` (make it so; idempotent). The runner (runner.py) orders,
resumes, retries and times them; stages never print: they call `ctx.progress`, which the
CLI connects to the terminal.

Stage modules import this; the CLI imports the runner and the registry.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from bootstrap.config import Settings
from bootstrap.state import PlatformState
from stacks.errors import PlatformError
from stacks.kube import waits

if TYPE_CHECKING:
    from bootstrap.engines.base import Engine
    from stacks.kube.client import KubeClient


class Progress(Protocol):
    """Where stages report. Implemented by bootstrap.cli.terminal.Terminal."""

    def step(self, stage: str, message: str) -> None:
        """The current step inside a stage ("waiting for Deployment x: 0/1 ready")."""

    def note(self, stage: str, message: str) -> None:
        """A fact worth keeping in the output ("already seeded at 1a2b3c")."""

    def warn(self, stage: str, message: str) -> None: ...


class NullProgress:
    def step(self, stage: str, message: str) -> None:
        pass

    def note(self, stage: str, message: str) -> None:
        pass

    def warn(self, stage: str, message: str) -> None:
        pass


class _RememberingProgress:
    """Passes progress on and remembers each stage's latest step."""

    def __init__(self, inner: Progress, last: dict[str, str]) -> None:
        self.inner = inner
        self.last = last

    def step(self, stage: str, message: str) -> None:
        self.last[stage] = message
        self.inner.step(stage, message)

    def note(self, stage: str, message: str) -> None:
        self.inner.note(stage, message)

    def warn(self, stage: str, message: str) -> None:
        self.inner.warn(stage, message)


class Cancelled(PlatformError):
    """The run was interrupted (Ctrl-C); stages stop at their next checkpoint."""


@dataclass
class StageContext:
    """Everything a stage may use. Built once per run by the CLI."""

    settings: Settings
    state: PlatformState
    progress: Progress
    engine: Engine
    log: logging.Logger
    dry_run: bool = False
    cancelled: threading.Event = field(default_factory=threading.Event)
    _kube: KubeClient | None = None
    # Facts one stage hands to the next within a run (e.g. git credentials).
    facts: dict[str, object] = field(default_factory=dict)
    # The last step each stage reported: a timeout names what it was waiting for.
    last_steps: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.progress = _RememberingProgress(self.progress, self.last_steps)

    def kube(self) -> KubeClient:
        """The cluster's API client (created on first use, once the cluster exists)."""
        if self._kube is None:
            self._kube = self.engine.client()
        return self._kube

    def checkpoint(self) -> None:
        """Call between steps: raises Cancelled after Ctrl-C."""
        if self.cancelled.is_set():
            raise Cancelled("interrupted")

    def wait(self, seconds: float) -> None:
        """Sleep that wakes at once on Ctrl-C."""
        if self.cancelled.wait(seconds):
            raise Cancelled("interrupted")


@dataclass(frozen=True)
class CheckResult:
    done: bool
    detail: str = ""


class Stage(Protocol):
    name: str
    description: str
    requires: tuple[str, ...]

    def timeout(self, ctx: StageContext) -> float:
        """Seconds this stage may run before it is stopped as failed."""

    def check(self, ctx: StageContext) -> CheckResult:
        """Already done and healthy? Must be cheap and must not change anything."""

    def plan(self, ctx: StageContext) -> list[str]:
        """What `run` would change, one line each (for --dry-run)."""

    def run(self, ctx: StageContext) -> str:
        """Do the work (idempotently); return a one-line summary."""


StageFactory = Callable[[], Stage]


def wait_namespaces_gone(ctx: StageContext, names: list[str], timeout: float = 90.0) -> None:
    """Namespace deletion finishes asynchronously (its objects go first): wait for it, so
    `platform down` returns a cluster as it was found. Ctrl-C ends the wait at once; a
    namespace still terminating at the timeout is said, not hidden."""
    left = waits.wait_namespaces_gone(
        ctx.kube(),
        names,
        timeout,
        on_wait=lambda left: ctx.progress.step(
            "down", f"waiting for namespace(s) {', '.join(left)} to go"
        ),
        sleep=ctx.wait,
    )
    if left:
        ctx.progress.warn(
            "down", f"namespace(s) {', '.join(left)} still terminating after {timeout:.0f} s"
        )
