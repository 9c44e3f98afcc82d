"""Stage 2, `cluster`: get a cluster from the engine and make sure its API answers.

k3d creates one from the generated config file; `existing` checks the user's cluster
(version, permissions). The kubeconfig path is recorded as an output for later commands.
"""

from __future__ import annotations

from bootstrap.stages.base import CheckResult, StageContext


class ClusterStage:
    name = "cluster"
    description = "create or connect to the Kubernetes cluster"
    requires: tuple[str, ...] = ("preflight",)

    def timeout(self, ctx: StageContext) -> float:
        return (
            max(ctx.settings.stage_timeout, 420.0)
            if ctx.engine.name == "k3d"
            else ctx.settings.stage_timeout
        )

    def check(self, ctx: StageContext) -> CheckResult:
        ready, detail = ctx.engine.is_ready()
        return CheckResult(ready, detail)

    def plan(self, ctx: StageContext) -> list[str]:
        return ctx.engine.plan()

    def run(self, ctx: StageContext) -> str:
        summary = ctx.engine.ensure(lambda message: ctx.progress.step(self.name, message))
        ctx.state.set_output("kubeconfig", ctx.engine.kubeconfig_path())
        if ctx.engine.context():
            ctx.state.set_output("context", ctx.engine.context())
        return summary
