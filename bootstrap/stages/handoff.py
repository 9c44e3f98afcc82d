"""Stage 11, `handoff`: everything is an Application in git; wait until all are ready.

The root Application (registry/<cluster>) holds one Application per component, the
platform's own included; this stage waits until the root and every Application it
delivered are Synced and Healthy (a per-app timeout, and a failure that names the app,
the object that is not healthy and why), then records where things are for the summary
`platform up` and `platform status` print.
"""

from __future__ import annotations

from bootstrap.stages.appwait import app_problem, app_timeout, wait_for_apps
from bootstrap.stages.base import CheckResult, StageContext
from stacks.reconciler.api import API_VERSION, KIND
from stacks.reconciler.install import NAMESPACE

ROOT_APP = "root"
DEMO_APP = "demo"  # gitops-template's demo; a user's --template may not have one


def application_names(ctx: StageContext) -> list[str]:
    names = [
        str(app["metadata"]["name"])
        for app in ctx.kube().list_objects(API_VERSION, KIND, NAMESPACE)
    ]
    return [ROOT_APP, *sorted(n for n in names if n != ROOT_APP)]


def record_summary(ctx: StageContext, names: list[str]) -> None:
    """Where things are, for `platform up`'s last lines and `platform status`.

    The demo link is recorded only when the demo Application exists: a platform seeded
    from a user's template (`--template`) may have none, and a dead link misleads."""
    if DEMO_APP in names:
        ctx.state.set_output("demo_url", f"https://demo.{ctx.settings.domain}")
        ctx.state.set_output(
            "next", "edit apps/demo in git (platform git clone), push, and watch `platform apps`"
        )
    else:
        ctx.state.clear_output("demo_url")
        ctx.state.set_output(
            "next", "edit apps/ in git (platform git clone), push, and watch `platform apps`"
        )
    ctx.state.set_output("credentials", "platform git credentials / platform vault credentials")


class HandoffStage:
    name = "handoff"
    description = "wait until every Application is Synced and Healthy"
    requires: tuple[str, ...] = ("reconciler",)

    def timeout(self, ctx: StageContext) -> float:
        return ctx.settings.stage_timeout

    def check(self, ctx: StageContext) -> CheckResult:
        client = ctx.kube()
        for name in application_names(ctx):
            problem = app_problem(client.get(API_VERSION, KIND, name, NAMESPACE), name)
            if problem:
                return CheckResult(False, problem)
        return CheckResult(True, "every Application is Synced and Healthy")

    def plan(self, ctx: StageContext) -> list[str]:
        return ["wait for the root Application and every Application it delivers"]

    def run(self, ctx: StageContext) -> str:
        per_app = app_timeout(ctx)
        wait_for_apps(ctx, self.name, [ROOT_APP], per_app)
        names = application_names(ctx)
        wait_for_apps(ctx, self.name, names, per_app)
        record_summary(ctx, names)
        return f"{len(names)} Applications Synced and Healthy"
