"""The stage runner: orders, resumes, verifies, retries, times and records stages.

Called by `platform up` (and `platform status` for the plan). For each stage in order:
a stage recorded as done is verified with its cheap `check`; a stage that is not done
(or fails verification) runs, with its timeout and a retry policy that retries only
`TransientError` (tenacity, exponential backoff) and re-polls `WaitingError`. Every start,
end, outcome and duration goes to state.json before the next step, so kill -9 at any
point leaves a record the next run resumes from. Ctrl-C sets `ctx.cancelled`, records the
interruption and raises `Interrupted` at once: the stage's worker thread is a daemon and
dies with the process.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from bootstrap.config import ConfigError
from bootstrap.stages.base import Cancelled, Stage, StageContext
from bootstrap.state import now_iso
from stacks.errors import PermanentError, PlatformError, TransientError, WaitingError

T = TypeVar("T")

Outcome = Literal["done", "verified", "failed", "interrupted", "planned", "skipped"]


class Interrupted(PlatformError):
    """Ctrl-C (or SIGTERM) during a run; the CLI exits 130."""


class StageFailed(PlatformError):
    """A stage failed; `stage` names it, message and hint come from the cause."""

    def __init__(self, stage: str, message: str, hint: str) -> None:
        super().__init__(message, hint)
        self.stage = stage


@dataclass(frozen=True)
class StageReport:
    name: str
    outcome: Outcome
    seconds: float
    summary: str = ""


@dataclass
class RunReport:
    stages: list[StageReport] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages)


class Events:
    """Callbacks the runner fires; the terminal implements them (defaults do nothing)."""

    def stage_started(self, name: str, description: str) -> None:
        pass

    def stage_finished(self, report: StageReport) -> None:
        pass

    def stage_failed(self, name: str, error: PlatformError, seconds: float) -> None:
        pass

    def stage_retrying(self, name: str, error: PlatformError, attempt: int, delay: float) -> None:
        pass

    def stage_interrupted(self, name: str) -> None:
        pass


def order_stages(stages: Sequence[Stage]) -> list[Stage]:
    """Check that every requirement comes earlier; the declared order is the run order."""
    seen: set[str] = set()
    names = {s.name for s in stages}
    for stage in stages:
        for required in stage.requires:
            if required not in names:
                raise PermanentError(f"stage {stage.name} requires unknown stage {required}")
            if required not in seen:
                raise PermanentError(
                    f"stage {stage.name} is ordered before {required}, which it requires"
                )
        seen.add(stage.name)
    return list(stages)


def select(
    stages: Sequence[Stage], start_from: str | None, only: str | None
) -> tuple[list[Stage], set[str]]:
    """The stages to consider and the ones that must run even if recorded as done."""
    names = [s.name for s in stages]
    for wanted in (start_from, only):
        if wanted is not None and wanted not in names:
            raise ConfigError(
                f"there is no stage named {wanted!r}",
                hint=f"choose one of: {', '.join(names)}",
            )
    if only is not None:
        return [s for s in stages if s.name == only], {only}
    if start_from is not None:
        index = names.index(start_from)
        return list(stages), set(names[index:])
    return list(stages), set()


class Runner:
    def __init__(
        self,
        stages: Sequence[Stage],
        events: Events | None = None,
        retry_attempts: int = 5,
        retry_max_wait: float = 20.0,
    ) -> None:
        self.stages = order_stages(stages)
        self.events = events or Events()
        self.retry_attempts = retry_attempts
        self.retry_max_wait = retry_max_wait

    # ---- planning -----------------------------------------------------------------------

    def plan(
        self, ctx: StageContext, start_from: str | None = None, only: str | None = None
    ) -> list[tuple[str, str, list[str]]]:
        """(stage, "done"|"run", what would change) for --dry-run; changes nothing."""
        chosen, forced = select(self.stages, start_from, only)
        recorded = ctx.state.load()["stages"]
        rows: list[tuple[str, str, list[str]]] = []
        for stage in chosen:
            done = recorded.get(stage.name, {}).get("outcome") in ("done", "verified")
            if done and stage.name not in forced:
                rows.append((stage.name, "done", []))
                continue
            try:
                changes = stage.plan(ctx)
            except PlatformError as error:
                changes = [f"cannot plan yet: {error}"]
            rows.append((stage.name, "run", changes))
        return rows

    # ---- running ------------------------------------------------------------------------

    def run(
        self,
        ctx: StageContext,
        start_from: str | None = None,
        only: str | None = None,
        deadline: float | None = None,
    ) -> RunReport:
        chosen, forced = select(self.stages, start_from, only)
        report = RunReport()
        for stage in chosen:
            ctx.checkpoint()
            if deadline is not None and time.monotonic() > deadline:
                raise StageFailed(
                    stage.name,
                    f"`platform up` ran out of time before stage {stage.name}",
                    "raise --timeout, then run `platform up` again: it resumes here",
                )
            report.stages.append(
                self._one(stage, ctx, forced=stage.name in forced, deadline=deadline)
            )
        return report

    def _one(
        self, stage: Stage, ctx: StageContext, forced: bool, deadline: float | None
    ) -> StageReport:
        recorded = ctx.state.load()["stages"].get(stage.name, {})
        started = time.monotonic()
        if not forced and recorded.get("outcome") in ("done", "verified"):
            ctx.progress.step(stage.name, "verifying")
            check = self._guarded(stage, ctx, lambda: stage.check(ctx), timeout=60.0)
            if check.done:
                result = StageReport(
                    stage.name, "verified", time.monotonic() - started, check.detail
                )
                self.events.stage_finished(result)
                return result
            ctx.log.info(
                "stage %s was done but its check failed (%s); running it again",
                stage.name,
                check.detail,
            )

        self.events.stage_started(stage.name, stage.description)
        ctx.state.update_stage(
            stage.name,
            outcome="running",
            started=now_iso(),
            finished=None,
            error=None,
            hint=None,
            pid=os.getpid(),
        )
        timeout = stage.timeout(ctx)
        if deadline is not None:
            timeout = max(1.0, min(timeout, deadline - time.monotonic()))
        attempts = 0
        try:

            def attempt() -> str:
                nonlocal attempts
                attempts += 1
                return self._guarded(
                    stage,
                    ctx,
                    lambda: self._run_until_ready(stage, ctx),
                    timeout=timeout - (time.monotonic() - started),
                )

            summary = self._retrying(stage, ctx, started, timeout)(attempt)
        except (KeyboardInterrupt, Cancelled, Interrupted) as error:
            ctx.cancelled.set()
            _record_end(ctx, stage.name, "interrupted", started, attempts)
            self.events.stage_interrupted(stage.name)
            raise Interrupted(
                f"interrupted during stage {stage.name}", hint="run `platform up` again to resume"
            ) from error
        except PlatformError as error:
            seconds = _record_end(
                ctx, stage.name, "failed", started, attempts, error=str(error), hint=error.hint
            )
            self.events.stage_failed(stage.name, error, seconds)
            raise StageFailed(stage.name, str(error), error.hint) from error
        seconds = _record_end(ctx, stage.name, "done", started, attempts, summary=summary)
        result = StageReport(stage.name, "done", seconds, summary)
        self.events.stage_finished(result)
        return result

    def _run_until_ready(self, stage: Stage, ctx: StageContext) -> str:
        """Run; on WaitingError come back after `retry_after` (the timeout bounds it)."""
        while True:
            try:
                return stage.run(ctx)
            except WaitingError as waiting:
                ctx.progress.step(stage.name, str(waiting))
                ctx.wait(waiting.retry_after)

    def _retrying(
        self, stage: Stage, ctx: StageContext, started: float, timeout: float
    ) -> Retrying:
        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            if isinstance(error, PlatformError):
                ctx.log.warning(
                    "stage %s: transient error, retrying in %.1fs: %s", stage.name, delay, error
                )
                self.events.stage_retrying(stage.name, error, state.attempt_number, delay)

        return Retrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(self.retry_attempts) | stop_after_delay(timeout),
            wait=wait_exponential(multiplier=1, min=1, max=self.retry_max_wait),
            sleep=ctx.wait,
            before_sleep=before_sleep,
            reraise=True,
        )

    def _guarded(self, stage: Stage, ctx: StageContext, work: Callable[[], T], timeout: float) -> T:
        """Run `work` in a daemon thread; the caller's thread stays free for Ctrl-C and timeouts."""
        box: dict[str, object] = {}

        def target() -> None:
            try:
                box["value"] = work()
            except BaseException as error:  # handed to the caller's thread below
                box["error"] = error

        worker = threading.Thread(target=target, name=f"stage-{stage.name}", daemon=True)
        worker.start()
        worker.join(timeout=max(timeout, 0.1))
        if worker.is_alive():
            ctx.cancelled.set()  # ask the stage to stop at its next checkpoint
            worker.join(timeout=2.0)
            ctx.cancelled.clear()
            last = ctx.last_steps.get(stage.name)
            raise PermanentError(
                f"stage {stage.name} did not finish within {timeout:.0f}s"
                + (f"; its last step: {last}" if last else ""),
                hint="see the log for the last step; raise the stage timeout (--stage-timeout) if it was progressing, then run `platform up` again",
            )
        if "error" in box:
            error = box["error"]
            assert isinstance(error, BaseException)
            raise error
        return box["value"]  # type: ignore[return-value]


def _record_end(
    ctx: StageContext, stage: str, outcome: Outcome, started: float, attempts: int, **extra: object
) -> float:
    """Write a stage's end to state.json; returns its duration in seconds."""
    seconds = time.monotonic() - started
    ctx.state.update_stage(
        stage,
        outcome=outcome,
        finished=now_iso(),
        seconds=round(seconds, 3),
        attempts=attempts,
        **extra,
    )
    return seconds
