"""Waiting for GitOps: Applications Synced and Healthy, with a reason when they are not.

The stages after the hand-over to the reconciler (secrets, certs, dns, handoff) do not
apply anything themselves: they wait until the Applications that deliver their component
report Synced and Healthy. When an app does not get there in time, the failure names the
app, the object that is not healthy and why (its health message and, for a workload, the
cause one level down: a pending claim, an unschedulable pod, an image pull), so nobody
has to dig.

`AppsReadyStage` is the reusable stage; `app_problem` and `wait_for_apps` are what it and
the handoff stage use.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bootstrap.stages.base import CheckResult, StageContext
from stacks.errors import PermanentError, PlatformError
from stacks.kube.diagnose import with_cause
from stacks.kube.objects import KubeObject, condition_of
from stacks.reconciler.api import API_VERSION, KIND
from stacks.reconciler.install import NAMESPACE

if TYPE_CHECKING:
    from stacks.kube.client import KubeClient

POLL_SECONDS = 1.0
# The per-app wait ends this much before the stage's own timeout, so the failure is the
# one that names the app and the object, not the runner's generic timeout.
MARGIN_SECONDS = 5.0
WORKLOAD_KINDS = ("Deployment", "StatefulSet")


def app_timeout(ctx: StageContext) -> float:
    return max(5.0, ctx.settings.stage_timeout - MARGIN_SECONDS)


def app_problem(app: KubeObject | None, name: str) -> str:
    """'' when the Application is Synced and Healthy; else one sentence saying why not."""
    if app is None:
        return f"Application {name} does not exist yet (the root app creates it from git)"
    status: dict[str, Any] = app.get("status") or {}
    sync = (status.get("sync") or {}).get("status", "Unknown")
    health = status.get("health") or {}
    if sync == "Synced" and health.get("status") == "Healthy":
        return ""
    ready = condition_of(app, "Ready") or {}
    for resource in status.get("resources") or []:
        resource_health = resource.get("health") or {}
        if resource_health.get("status") not in (None, "Healthy"):
            where = f"{resource.get('namespace')}/" if resource.get("namespace") else ""
            return (
                f"Application {name} is {sync}/{health.get('status', 'Unknown')}: "
                f"{resource.get('kind')} {where}{resource.get('name')} is "
                f"{resource_health.get('status')}: {resource_health.get('message', '')}".rstrip(
                    ": "
                )
            )
    detail = ready.get("message") or health.get("message") or "no status yet"
    return f"Application {name} is {sync}/{health.get('status', 'Unknown')}: {detail}"


def unhealthy_workload(app: KubeObject | None) -> tuple[str, str, str] | None:
    """(kind, namespace, name) of the first Deployment or StatefulSet the Application
    reports as not Healthy, if any."""
    for resource in ((app or {}).get("status") or {}).get("resources") or []:
        health = (resource.get("health") or {}).get("status")
        if (
            resource.get("group") == "apps"
            and resource.get("kind") in WORKLOAD_KINDS
            and health not in (None, "Healthy")
        ):
            return (
                str(resource["kind"]),
                str(resource.get("namespace") or ""),
                str(resource["name"]),
            )
    return None


def explained(client: KubeClient, app: KubeObject | None, problem: str) -> str:
    """`problem` plus why its workload does not become ready (stacks/kube/diagnose.py)."""
    workload = unhealthy_workload(app) if problem else None
    if workload is None:
        return problem
    kind, namespace, name = workload
    return with_cause(problem, client, client.get("apps/v1", kind, name, namespace or None))


def wait_for_apps(
    ctx: StageContext,
    stage: str,
    names: Sequence[str],
    timeout: float,
    extra: Callable[[], str] | None = None,
) -> None:
    """Poll until every app is Synced and Healthy (and `extra()` returns ''); the timeout
    is per app, counted from when the previous one became ready."""
    client = ctx.kube()
    pending = list(names)
    deadline = time.monotonic() + timeout
    problem = ""
    while pending:
        ctx.checkpoint()
        name = pending[0]
        try:
            app = client.get(API_VERSION, KIND, name, NAMESPACE)
            problem = explained(client, app, app_problem(app, name))
        except PlatformError as error:
            problem = f"cannot read Application {name}: {error}"
        if not problem:
            pending.pop(0)
            deadline = time.monotonic() + timeout
            continue
        ctx.progress.step(stage, f"waiting: {problem}")
        if time.monotonic() > deadline:
            raise PermanentError(
                f"{problem} (waited {timeout:.0f}s)",
                hint="run `platform apps` and `kubectl describe` the object named; fix it in git and push, "
                "then run `platform up` again",
            )
        ctx.wait(POLL_SECONDS)
    while extra is not None and (problem := extra()):
        ctx.progress.step(stage, f"waiting: {problem}")
        if time.monotonic() > deadline:
            raise PermanentError(f"{problem} (waited {timeout:.0f}s)", hint="run `platform status`")
        ctx.wait(POLL_SECONDS)


@dataclass
class AppsReadyStage:
    """A stage that is done when its Applications (delivered from git) are ready."""

    name: str
    description: str
    apps: tuple[str, ...]
    requires: tuple[str, ...] = ("reconciler",)
    prepare: Callable[[StageContext], str] | None = None  # bootstrap-only work first
    ready_check: Callable[[StageContext], str] | None = None  # '' when ready
    cleanup: Callable[[StageContext], str] | None = None  # undo `prepare` on `platform down`
    # On `platform down`, once every component is gone: undo what the stage's components
    # changed outside their own objects (bootstrap/stages/teardown.py).
    leftovers: Callable[[StageContext], str] | None = None

    def timeout(self, ctx: StageContext) -> float:
        return ctx.settings.stage_timeout

    def check(self, ctx: StageContext) -> CheckResult:
        client = ctx.kube()
        for app in self.apps:
            problem = app_problem(client.get(API_VERSION, KIND, app, NAMESPACE), app)
            if problem:
                return CheckResult(False, problem)
        extra = self.ready_check(ctx) if self.ready_check else ""
        return CheckResult(not extra, extra or f"{', '.join(self.apps)} Synced and Healthy")

    def plan(self, ctx: StageContext) -> list[str]:
        return [f"wait for Application(s) {', '.join(self.apps)} to be Synced and Healthy"]

    def remove(self, ctx: StageContext) -> str:
        return self.cleanup(ctx) if self.cleanup else ""

    def remove_leftovers(self, ctx: StageContext) -> str:
        return self.leftovers(ctx) if self.leftovers else ""

    def run(self, ctx: StageContext) -> str:
        prepared = self.prepare(ctx) if self.prepare else ""
        checker = self.ready_check
        wait_for_apps(
            ctx,
            self.name,
            self.apps,
            app_timeout(ctx),
            extra=(lambda: checker(ctx)) if checker else None,
        )
        ready = f"{', '.join(self.apps)} Synced and Healthy"
        return f"{prepared}; {ready}" if prepared else ready
