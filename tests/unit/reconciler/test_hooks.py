"""Hooks (pure part): which objects are hooks of which phase, Helm's mapping, delete
policies, generateName only for hooks, hooks kept out of the plan and the inventory,
their order, and the bounded status summary."""

from __future__ import annotations

import pytest

from stacks.kube.objects import ObjectRef
from stacks.reconciler.api import AppKey
from stacks.reconciler.hooks import (
    HOOK_ID,
    MAX_LISTED_HOOKS,
    HookError,
    HookRun,
    HookState,
    Phase,
    Policy,
    describe_hooks,
    hook_of,
    restore,
    summary,
)
from stacks.reconciler.plan import hook_waves, make_plan, normalize
from stacks.reconciler.render import RenderError, render
from stacks.reconciler.retry import RetryPolicy

APP = AppKey("platform", "demo")


def scope(api_version: str, kind: str) -> bool | None:
    return {"ConfigMap": True, "Job": True, "Pod": True, "CustomResourceDefinition": False}.get(
        kind
    )


def rendered(text: str) -> list:  # type: ignore[type-arg]
    return normalize(render([("hooks.yaml", text.encode())]), APP, "team", scope)


def test_argo_and_our_annotations_and_default_policy() -> None:
    spec = hook_of({"argocd.argoproj.io/hook": "PreSync"})
    assert spec is not None and spec.phases == (Phase.PRE_SYNC,)
    assert spec.policies == frozenset({Policy.BEFORE_HOOK_CREATION})  # Argo CD's default
    ours = hook_of(
        {
            "gitops.platform.local/hook": "PostSync, SyncFail",
            "argocd.argoproj.io/hook": "PreSync",  # ours wins
            "argocd.argoproj.io/hook-delete-policy": "HookSucceeded,HookFailed",
        }
    )
    assert ours is not None and ours.phases == (Phase.POST_SYNC, Phase.SYNC_FAIL)
    assert ours.policies == frozenset({Policy.HOOK_SUCCEEDED, Policy.HOOK_FAILED})
    skip = hook_of({"argocd.argoproj.io/hook": "Skip"})
    assert skip is not None and skip.skip and not skip.runs_in(Phase.SYNC)
    assert hook_of({"app": "x"}) is None
    deletion = hook_of({"argocd.argoproj.io/hook": "PostDelete"})
    assert deletion is not None and "not run by this reconciler" in deletion.skip


def test_bad_hook_annotations_are_named() -> None:
    with pytest.raises(HookError, match="unknown hook type 'Presync'"):
        hook_of({"argocd.argoproj.io/hook": "Presync"})
    with pytest.raises(HookError, match="unknown delete policy 'OnSuccess'"):
        hook_of(
            {
                "argocd.argoproj.io/hook": "Sync",
                "argocd.argoproj.io/hook-delete-policy": "OnSuccess",
            }
        )


def test_helm_hooks_map_as_argo_cd_maps_them() -> None:
    pre = hook_of(
        {
            "helm.sh/hook": "pre-install,pre-upgrade",
            "helm.sh/hook-delete-policy": "hook-succeeded,before-hook-creation",
        }
    )
    assert pre is not None and pre.phases == (Phase.PRE_SYNC,)
    assert pre.policies == frozenset({Policy.HOOK_SUCCEEDED, Policy.BEFORE_HOOK_CREATION})
    post = hook_of({"helm.sh/hook": "post-upgrade"})
    assert post is not None and post.phases == (Phase.POST_SYNC,)
    assert hook_of({"helm.sh/hook": "crd-install"}) is None  # an ordinary object
    test = hook_of({"helm.sh/hook": "test"})
    assert test is not None and test.skip and "not supported" in test.skip
    # An Argo CD hook annotation wins over Helm's (Argo CD ignores Helm's then).
    both = hook_of({"helm.sh/hook": "post-install", "argocd.argoproj.io/hook": "Sync"})
    assert both is not None and both.phases == (Phase.SYNC,)
    with pytest.raises(HookError, match="hook-delete-policy"):
        hook_of({"helm.sh/hook": "pre-install", "helm.sh/hook-delete-policy": "always"})


HOOKS = """
apiVersion: batch/v1
kind: Job
metadata:
  generateName: migrate-
  annotations: {argocd.argoproj.io/hook: PreSync, argocd.argoproj.io/sync-wave: "2"}
spec: {}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: seed
  annotations: {helm.sh/hook: pre-install, helm.sh/hook-weight: "-3"}
spec: {}
---
apiVersion: v1
kind: Pod
metadata:
  name: chart-test
  annotations: {helm.sh/hook: test-success}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: app, annotations: {argocd.argoproj.io/sync-wave: "1"}}
"""


def test_generate_name_only_for_hooks() -> None:
    with pytest.raises(RenderError, match=r"object has no metadata\.name"):
        render([("a.yaml", b"apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: x-}\n")])
    desired = rendered(HOOKS)
    migrate = next(d for d in desired if d.ref.kind == "Job" and d.ref.name == "migrate-")
    assert migrate.hook is not None and migrate.wave == 2
    assert "name" not in migrate.obj["metadata"]
    assert migrate.obj["metadata"]["labels"][HOOK_ID]  # finds earlier instances


def test_hooks_stay_out_of_the_plan_and_inventory_and_run_by_wave() -> None:
    desired = rendered(HOOKS)
    plan = make_plan(APP, desired, {}, [], prune=True, allow_empty=False, allow_mass_prune=False)
    assert [s.ref.name for s in plan.steps] == ["app"]
    assert plan.steps[0].desired.wave == 1  # argocd.argoproj.io/sync-wave is read
    assert sorted(d.ref.name for d in plan.hooks) == ["migrate-", "seed"]
    assert [d.ref.name for d in plan.skipped] == ["chart-test"]
    order = [
        (w, [d.ref.name for d in items]) for w, items in hook_waves(plan.hooks, Phase.PRE_SYNC)
    ]
    assert order == [(-3, ["seed"]), (2, ["migrate-"])]  # Helm's weight is the wave
    assert hook_waves(plan.hooks, Phase.POST_SYNC) == []


def test_summary_is_bounded_and_readable() -> None:
    run = HookRun("abc")
    for i in range(MAX_LISTED_HOOKS + 5):
        record = run.record(Phase.PRE_SYNC, ObjectRef("batch", "Job", "team", f"j{i}"), 0)
        record.state = HookState.SUCCEEDED
    failed = run.record(Phase.SYNC, ObjectRef("batch", "Job", "team", "bad"), 1)
    failed.state, failed.message = HookState.FAILED, "x" * 5000
    run.phase, run.failure = "Failed", "Sync hook failed"
    status = summary(run)
    assert status is not None
    assert len(status["items"]) == MAX_LISTED_HOOKS and status["omitted"] == 6
    assert status["phase"] == "Failed" and status["message"] == "Sync hook failed"
    line = describe_hooks(
        {
            "phase": "Sync",
            "items": [{"phase": "Sync", "kind": "Job", "name": "bad", "state": "Failed"}],
        }
    )
    assert line == "Sync: 0/1 hooks succeeded; Sync Job/bad Failed"
    assert summary(None) == {} and summary(HookRun("abc")) == {}


def test_retry_policy_backoff() -> None:
    policy = RetryPolicy.parse(
        {"limit": 3, "backoff": {"duration": "2s", "factor": 3, "maxDuration": "10s"}}
    )
    assert policy is not None
    assert [policy.delay(n) for n in (1, 2, 3)] == [2.0, 6.0, 10.0]
    assert policy.allows(2) and not policy.allows(3)
    defaults = RetryPolicy.parse({"limit": -1})
    assert defaults is not None and defaults.allows(10_000)
    assert (defaults.duration, defaults.factor, defaults.max_duration) == (5.0, 2.0, 180.0)
    assert RetryPolicy.parse({"backoff": {"duration": "30"}}).duration == 30.0  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="factor"):
        RetryPolicy.parse({"backoff": {"factor": 0}})
    with pytest.raises(ValueError, match="duration"):
        RetryPolicy.parse({"backoff": {"duration": "soon"}})


def test_a_run_survives_a_restart_through_the_status() -> None:
    run = HookRun("rev1", phase="PreSync")
    record = run.record(Phase.PRE_SYNC, ObjectRef("batch", "Job", "team", "migrate-", "v1"), 0)
    record.ref = ObjectRef("batch", "Job", "team", "migrate-x7k2p", "v1")
    record.state = HookState.RUNNING
    written = summary(run)
    assert written is not None and written["items"][0]["hook"] == "migrate-"
    again = restore(written, "rev1")
    assert again is not None and again.phase == "PreSync"
    (restored,) = again.records.values()
    assert restored.ref == record.ref and restored.state is HookState.RUNNING
    # The same hook of the render finds it (it is not created a second time).
    assert again.record(Phase.PRE_SYNC, record.identity, 0) is restored
    assert restore(written, "rev2") is None  # another revision starts afresh
    run.phase, run.failure, run.reason, run.retry_at = (
        "Failed",
        "PreSync hook failed",
        "HookFailed",
        0.0,
    )
    failed = restore(summary(run), "rev1")
    assert failed is not None and failed.retry_at == 0 and failed.reason == "HookFailed"
    assert (
        restore({"revision": "rev1", "phase": "Sync", "items": [{"phase": "Sync"}]}, "rev1")
        is not None
    )
