"""The reconciler's policy step: may this Application deliver what it rendered, as whom.

    compare -> policy -> self-heal gate -> apply

`PolicyGate.check(sync)` reads the Application's AppProject (in the reconciler's own
namespace), judges every rendered object and every prune of the plan with
projects.evaluate, and either raises `ReconcileFailed("PolicyDenied" |
"ProjectNotFound" | "InvalidProject")` before anything is applied or pruned (the
controller turns it into Ready=False and a Warning event), or sets `sync.client`: the
client that applies and prunes for this Application. That is the reconciler itself
only in the `platform` project; in any other it impersonates the project's
ServiceAccount (`Impersonate-User: system:serviceaccount:<ns>:<name>`, on the same
connection pool; stacks/kube/client.py), so the API server's RBAC is the second gate.

`client_for(obj)` gives the same identity to the cascade-delete finalizer.
With `enforce=False` (`platform run reconciler --no-projects`, for tests and local
development only) every Application applies as the reconciler, as before projects.

Called by stacks.reconciler.controller (one step of `_sync`) and finalize.py.
"""

from __future__ import annotations

from stacks.errors import PermanentError
from stacks.kube.client import KubeClient
from stacks.kube.controller import Stop
from stacks.kube.errors import NotFound
from stacks.kube.objects import KubeObject
from stacks.reconciler.desired import ReconcileFailed
from stacks.reconciler.parts import Sync
from stacks.reconciler.projects import (
    PLATFORM_PROJECT,
    PROJECT_API_VERSION,
    PROJECT_KIND,
    AppView,
    Project,
    evaluate,
)


class PolicyGate:
    def __init__(self, client: KubeClient, namespace: str, enforce: bool = True) -> None:
        self.client = client
        self.namespace = namespace  # where AppProjects live (the reconciler's own)
        self.enforce = enforce

    def project(self, name: str) -> Project:
        where = f"AppProject '{self.namespace}/{name}'"
        try:
            obj = self.client.get(PROJECT_API_VERSION, PROJECT_KIND, name, self.namespace)
        except NotFound as error:  # discovery: the kind is not served
            raise ReconcileFailed(
                "ProjectNotFound",
                f"project '{name}' cannot be read: the AppProject CRD is not installed "
                f"({error}); nothing was applied or pruned",
                stalled=True,
            ) from error
        if obj is None:
            raise ReconcileFailed(
                "ProjectNotFound",
                f"project '{name}' does not exist (no {where}); nothing was applied or "
                f"pruned. Create the AppProject, or set spec.project to an existing one "
                f"(kubectl get appprojects -n {self.namespace})",
                stalled=True,
            )
        try:
            return Project.parse(obj)
        except PermanentError as error:
            raise ReconcileFailed(
                "InvalidProject", f"{error}; nothing was applied or pruned", stalled=True
            ) from error

    def check(self, sync: Sync) -> Stop | None:
        """The policy step: refuse the whole sync, or choose who applies it."""
        if not self.enforce:
            return None
        app = AppView.of(sync.obj)
        plan = sync.plan
        # Hooks too (issue 21): they are created in the cluster like any object.
        refs = [s.ref for s in plan.steps] + [h.ref for h in plan.hooks]
        refs += [p.ref for p in plan.prunes]
        verdict = evaluate(self.project(app.project), app, refs, self.namespace)
        if not verdict.allowed:
            raise ReconcileFailed("PolicyDenied", verdict.message(), stalled=True)
        if verdict.user:
            sync.client = self.client.impersonating(verdict.user)
        return None

    def client_for(self, obj: KubeObject) -> KubeClient:
        """Who deletes an Application's objects: its project's identity (the finalizer)."""
        if not self.enforce:
            return self.client
        app = AppView.of(obj)
        if app.project == PLATFORM_PROJECT:
            return self.client
        verdict = evaluate(self.project(app.project), app, [], self.namespace)
        if not verdict.user:
            raise ReconcileFailed("PolicyDenied", verdict.message(), stalled=True)
        return self.client.impersonating(verdict.user)
