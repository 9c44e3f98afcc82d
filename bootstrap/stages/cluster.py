"""Stage 2, `cluster`: get a cluster from the engine and make sure its API answers.

k3d creates one from the generated config file; `existing` checks the user's cluster
(version, permissions), and refuses a cluster that already holds another platform: the
platform's namespaces and its root Application have fixed names, so a second platform
would take them over (it used to repoint the first one's root Application to its own
repository). The owner is read from the root Application, which follows
`registry/<name>`. The kubeconfig path is recorded as an output for later commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bootstrap.stages.base import CheckResult, StageContext
from stacks.errors import PermanentError, PlatformError

if TYPE_CHECKING:
    from stacks.kube.client import KubeClient

REGISTRY_PREFIX = "registry/"


def other_platform(client: KubeClient, name: str) -> str | None:
    """The name of another platform installed in this cluster, or None."""
    from bootstrap.stages.reconciler import ROOT_APP
    from stacks.reconciler import install
    from stacks.reconciler.api import API_VERSION, KIND

    try:
        root = client.get(API_VERSION, KIND, ROOT_APP, install.NAMESPACE)
    except PlatformError:  # no Application kind yet: no platform has a root here
        return None
    path = str(((root or {}).get("spec") or {}).get("source", {}).get("path") or "")
    owner = path[len(REGISTRY_PREFIX) :] if path.startswith(REGISTRY_PREFIX) else ""
    return owner if owner and owner != name else None


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
        owner = other_platform(ctx.kube(), ctx.settings.name)
        if owner is not None:
            from bootstrap.stages.reconciler import ROOT_APP
            from stacks.reconciler import install

            raise PermanentError(
                f"this cluster already holds platform {owner!r} (Application "
                f"'{install.NAMESPACE}/{ROOT_APP}' follows {REGISTRY_PREFIX}{owner}); platform "
                f"{ctx.settings.name!r} would take over its namespaces and root Application",
                hint=f"use its name (`platform up --name {owner}`), or remove it first "
                f"(`platform down --name {owner}`), or use another cluster",
            )
        ctx.state.set_output("kubeconfig", ctx.engine.kubeconfig_path())
        if ctx.engine.context():
            ctx.state.set_output("context", ctx.engine.context())
        return summary
