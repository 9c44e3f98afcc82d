"""The stage runner: order, resume, verify, retry only transient errors, timeouts, Ctrl-C.

Stages here are small fakes behind the Stage protocol (pure runner logic); the real
stages are exercised against real components in tests/integration.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bootstrap.config import load_settings
from bootstrap.stages.base import CheckResult, NullProgress, StageContext
from bootstrap.stages.runner import Interrupted, Runner, StageFailed
from bootstrap.state import PlatformState
from stacks.errors import PermanentError, TransientError, WaitingError


@dataclass
class FakeStage:
    name: str
    requires: tuple[str, ...] = ()
    description: str = "fake"
    failures: list[Exception] = field(default_factory=list)
    healthy: bool = True
    runs: int = 0
    checks: int = 0
    sleep: float = 0.0
    timeout_seconds: float = 5.0

    def timeout(self, ctx: StageContext) -> float:
        return self.timeout_seconds

    def check(self, ctx: StageContext) -> CheckResult:
        self.checks += 1
        return CheckResult(self.healthy, "fine" if self.healthy else "broken")

    def plan(self, ctx: StageContext) -> list[str]:
        return [f"would run {self.name}"]

    def run(self, ctx: StageContext) -> str:
        self.runs += 1
        if self.sleep:
            ctx.wait(self.sleep)
        if self.failures:
            raise self.failures.pop(0)
        return f"{self.name} ok"


class NoEngine:
    name = "none"


@pytest.fixture
def ctx(tmp_path: Path) -> StageContext:
    settings = load_settings(environ={"PLATFORM_HOME": str(tmp_path)})
    return StageContext(
        settings=settings,
        state=PlatformState(tmp_path, "local"),
        progress=NullProgress(),
        engine=NoEngine(),  # type: ignore[arg-type]
        log=logging.getLogger("test"),
    )


def fast(stages: list[FakeStage]) -> Runner:
    return Runner(stages, retry_attempts=4, retry_max_wait=0.01)


def test_runs_in_order_and_records(ctx: StageContext) -> None:
    a, b = FakeStage("a"), FakeStage("b", requires=("a",))
    report = fast([a, b]).run(ctx)
    assert [(s.name, s.outcome) for s in report.stages] == [("a", "done"), ("b", "done")]
    recorded = ctx.state.load()["stages"]
    assert recorded["a"]["outcome"] == "done" and recorded["a"]["summary"] == "a ok"
    assert recorded["b"]["started"] and recorded["b"]["finished"]


def test_requirement_order_is_validated() -> None:
    with pytest.raises(PermanentError, match="ordered before"):
        Runner([FakeStage("b", requires=("a",)), FakeStage("a")])


def test_resume_skips_done_stages_after_verifying_them(ctx: StageContext) -> None:
    a, b = (
        FakeStage("a"),
        FakeStage("b", failures=[PermanentError("port 80 is held", hint="free it")]),
    )
    with pytest.raises(StageFailed) as failed:
        fast([a, b]).run(ctx)
    assert failed.value.stage == "b" and failed.value.hint == "free it"
    assert ctx.state.load()["stages"]["b"]["outcome"] == "failed"
    report = fast([a, b]).run(ctx)
    assert a.runs == 1 and a.checks == 1  # verified, not re-run
    assert b.runs == 2
    assert [s.outcome for s in report.stages] == ["verified", "done"]


def test_done_stage_whose_check_fails_runs_again(ctx: StageContext) -> None:
    a = FakeStage("a")
    fast([a]).run(ctx)
    a.healthy = False
    fast([a]).run(ctx)
    assert a.runs == 2


def test_transient_errors_are_retried_permanent_are_not(ctx: StageContext) -> None:
    flaky = FakeStage("flaky", failures=[TransientError("reset"), TransientError("reset")])
    fast([flaky]).run(ctx)
    assert flaky.runs == 3 and ctx.state.load()["stages"]["flaky"]["attempts"] == 3
    broken = FakeStage("broken", failures=[PermanentError("no"), PermanentError("no")])
    with pytest.raises(StageFailed):
        fast([broken]).run(ctx)
    assert broken.runs == 1


def test_waiting_errors_are_polled_until_ready(ctx: StageContext) -> None:
    stage = FakeStage("w", failures=[WaitingError("not yet", retry_after=0.01)] * 3)
    fast([stage]).run(ctx)
    assert stage.runs == 4


def test_from_and_only(ctx: StageContext) -> None:
    a, b, c = FakeStage("a"), FakeStage("b"), FakeStage("c")
    fast([a, b, c]).run(ctx)
    fast([a, b, c]).run(ctx, start_from="b")
    assert (a.runs, b.runs, c.runs) == (1, 2, 2)
    fast([a, b, c]).run(ctx, only="a")
    assert a.runs == 2
    with pytest.raises(PermanentError, match="no stage named"):
        fast([a]).run(ctx, only="zzz")


def test_timeout_fails_the_stage_with_a_hint(ctx: StageContext) -> None:
    slow = FakeStage("slow", sleep=30, timeout_seconds=0.3)
    with pytest.raises(StageFailed, match="did not finish within") as caught:
        fast([slow]).run(ctx)
    assert "--stage-timeout" in caught.value.hint


def test_interrupt_records_and_raises(ctx: StageContext) -> None:
    slow = FakeStage("slow", sleep=30)
    threading.Timer(0.2, ctx.cancelled.set).start()
    with pytest.raises(Interrupted):
        fast([slow]).run(ctx)
    assert ctx.state.load()["stages"]["slow"]["outcome"] == "interrupted"


def test_plan_changes_nothing(ctx: StageContext) -> None:
    a = FakeStage("a")
    rows = fast([a]).plan(ctx)
    assert rows == [("a", "run", ["would run a"])]
    assert a.runs == 0 and not ctx.state.exists()
