"""Resource hooks against a real API server (issue 21): PreSync, the app, PostSync in
order; generateName; delete policies; a failed PreSync hook stops the sync and runs
SyncFail; Helm's hook annotations mapped as Argo CD maps them; retries.

The test cluster has no kubelet that runs containers, so most hook Jobs here carry
`spec.managedBy: tests.example/job-runner`: the built-in Job controller then leaves them
alone and the test plays the job controller, setting a Job's status to Complete or
Failed through the status subresource (`finish_job`). That is what makes the order
observable: nothing after a hook may happen until the test finishes the hook.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from stacks.kube.client import KubeClient
from stacks.reconciler.api import API_VERSION, KIND
from tests.integration.reconciler.charts import write_chart
from tests.integration.reconciler.conftest import (
    GitRepo,
    Reconciler,
    condition,
    configmap,
    ready,
    start_reconciler,
    wait_until,
)
from tests.integration.reconciler.test_projects import (  # noqa: F401 - fixtures
    application,
    enforcing,
    project_crd,
    tenant_project,
    tenant_rbac,
)
from tests.integration.reconciler.tools import tool_env, tool_reconciler  # noqa: F401 - fixtures
from tests.support import processes
from tests.support.cli import json_events, run_platform
from tests.support.kwok import KwokCluster

pytestmark = pytest.mark.integration

RUNNER = "tests.example/job-runner"  # spec.managedBy: the test is the Job's controller


def job(
    name: str = "",
    generate: str = "",
    annotations: dict[str, str] | None = None,
    managed: bool = True,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name} if name else {"generateName": generate}
    meta["annotations"] = dict(annotations or {})
    spec: dict[str, Any] = {
        "backoffLimit": 0,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "run", "image": "registry.example/tool:1"}],
                "tolerations": [
                    {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
                ],
            }
        },
    }
    if managed:
        spec["managedBy"] = RUNNER
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec}


def finish_job(kube: KubeClient, namespace: str, name: str, succeeded: bool) -> None:
    """Play the job controller: mark the Job Complete or Failed (status subresource)."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if succeeded:
        status: dict[str, Any] = {
            "startTime": now,
            "completionTime": now,
            "succeeded": 1,
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now},
                {"type": "Complete", "status": "True", "lastTransitionTime": now},
            ],
        }
    else:
        status = {
            "startTime": now,
            "failed": 1,
            "conditions": [
                {
                    "type": "FailureTarget",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "migration exited 3",
                    "lastTransitionTime": now,
                },
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "migration exited 3",
                    "lastTransitionTime": now,
                },
            ],
        }
    kube.merge_patch("batch/v1", "Job", name, {"status": status}, namespace, subresource="/status")


def jobs(kube: KubeClient, namespace: str, prefix: str) -> list[dict[str, Any]]:
    return [
        j
        for j in kube.list_objects("batch/v1", "Job", namespace)
        if j["metadata"]["name"].startswith(prefix)
    ]


def one_job(kube: KubeClient, namespace: str, prefix: str, timeout: float = 30) -> str:
    found: list[str] = []

    def check() -> bool:
        found[:] = [
            j["metadata"]["name"]
            for j in jobs(kube, namespace, prefix)
            if not j["metadata"].get("deletionTimestamp")
        ]
        return len(found) == 1

    processes.wait_for(check, timeout=timeout, what=f"one Job {prefix}*", interval=0.05)
    return found[0]


def create_app(
    kube: KubeClient, namespace: str, repo: GitRepo, name: str, path: str, **spec: Any
) -> None:
    body: dict[str, Any] = {
        "source": {"repoURL": repo.url, "path": path, "targetRevision": "main"},
        "destination": {"namespace": namespace},
        "interval": "3m",
        "timeout": spec.pop("timeout", "2m"),
        "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
    }
    body["syncPolicy"].update(spec.pop("sync_policy", {}))
    body.update(spec)
    kube.create(
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": name, "namespace": namespace},
            "spec": body,
        }
    )


def app(kube: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    obj = kube.get(API_VERSION, KIND, name, namespace)
    assert obj is not None
    return obj


def wait_app(
    kube: KubeClient, namespace: str, name: str, predicate: Any, what: str, timeout: float = 30
) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def check() -> bool:
        nonlocal last
        last = app(kube, namespace, name)
        return bool(predicate(last))

    try:
        processes.wait_for(check, timeout=timeout, what=what, interval=0.05)
    except TimeoutError as error:
        raise AssertionError(f"{error}\nstatus: {last.get('status')}") from None
    return last


def stays_absent(kube: KubeClient, namespace: str, name: str, seconds: float = 2.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if kube.get("v1", "ConfigMap", name, namespace) is not None:
            return False
        time.sleep(0.1)
    return True


def test_presync_then_app_then_postsync_with_delete_policies(
    reconciler: Reconciler, repo: GitRepo, kube: KubeClient, namespace: str
) -> None:
    repo.write(
        "app/hooks.yaml",
        [
            job(generate="migrate-", annotations={"argocd.argoproj.io/hook": "PreSync"}),
            job(
                name="smoke",
                annotations={
                    "argocd.argoproj.io/hook": "PostSync",
                    "argocd.argoproj.io/hook-delete-policy": "HookSucceeded",
                },
            ),
        ],
    )
    repo.write("app/config.yaml", configmap("app-config"))
    first = repo.commit("hooks")
    create_app(kube, namespace, repo, "hooked", "app")

    migrate = one_job(kube, namespace, "migrate-")  # generateName: the server named it
    assert migrate != "migrate-"
    assert stays_absent(kube, namespace, "app-config"), "applied before PreSync finished"
    obj = wait_app(
        kube,
        namespace,
        "hooked",
        lambda o: o.get("status", {}).get("hooks", {}).get("phase") == "PreSync",
        "status.hooks in the PreSync phase",
    )
    assert [i["state"] for i in obj["status"]["hooks"]["items"]] == ["Running"]
    assert kube.get("batch/v1", "Job", "smoke", namespace) is None

    finish_job(kube, namespace, migrate, succeeded=True)
    wait_until(
        lambda: kube.get("batch/v1", "Job", "smoke", namespace) is not None,
        "the PostSync Job after the app",
    )
    assert kube.get("v1", "ConfigMap", "app-config", namespace) is not None
    # The status follows at the end of the reconcile that created the Job.
    obj = wait_app(
        kube,
        namespace,
        "hooked",
        lambda o: o.get("status", {}).get("hooks", {}).get("phase") == "PostSync",
        "status.hooks in the PostSync phase",
    )
    assert obj["status"].get("lastAppliedRevision") != first  # not done before PostSync

    finish_job(kube, namespace, "smoke", succeeded=True)
    obj = wait_app(
        kube,
        namespace,
        "hooked",
        lambda o: o["status"].get("lastAppliedRevision") == first and ready(o) == "True",
        "synced after PostSync",
    )
    wait_until(
        lambda: kube.get("batch/v1", "Job", "smoke", namespace) is None,
        "HookSucceeded deletes the PostSync Job",
    )
    hooks = obj["status"]["hooks"]
    assert hooks["phase"] == "Succeeded"
    assert {(i["phase"], i["state"]) for i in hooks["items"]} == {
        ("PreSync", "Succeeded"),
        ("PostSync", "Succeeded"),
    }
    # Hooks are not part of the app: not in the inventory, not in resources.
    ids = {e["id"] for e in obj["status"]["inventory"]}
    assert ids == {f"{namespace}_app-config__ConfigMap"}
    assert all(r["kind"] != "Job" for r in obj["status"]["resources"])
    # The PreSync Job (default BeforeHookCreation) stays until the next sync.
    assert kube.get("batch/v1", "Job", migrate, namespace) is not None

    # The next sync deletes the earlier PreSync Job before creating the new one.
    repo.write("app/config.yaml", configmap("app-config", {"k": "v2"}))
    second = repo.commit("v2")
    kube.merge_patch(
        API_VERSION,
        KIND,
        "hooked",
        {"metadata": {"annotations": {"gitops.platform.local/refresh": second}}},
        namespace,
    )
    wait_until(
        lambda: kube.get("batch/v1", "Job", migrate, namespace) is None,
        "BeforeHookCreation deletes the previous instance",
    )
    again = one_job(kube, namespace, "migrate-")
    assert again != migrate
    finish_job(kube, namespace, again, succeeded=True)
    wait_until(
        lambda: kube.get("batch/v1", "Job", "smoke", namespace) is not None, "PostSync again"
    )
    finish_job(kube, namespace, "smoke", succeeded=True)
    wait_app(
        kube,
        namespace,
        "hooked",
        lambda o: o["status"].get("lastAppliedRevision") == second and ready(o) == "True",
        "second sync done",
    )


def test_failed_presync_blocks_the_sync_reports_it_and_runs_syncfail(
    cluster: KwokCluster, reconciler: Reconciler, repo: GitRepo, kube: KubeClient, namespace: str
) -> None:
    repo.write(
        "app/hooks.yaml",
        [
            job(generate="migrate-", annotations={"gitops.platform.local/hook": "PreSync"}),
            job(
                name="cleanup",
                annotations={
                    "gitops.platform.local/hook": "SyncFail",
                    "gitops.platform.local/hook-delete-policy": "HookSucceeded",
                },
            ),
        ],
    )
    repo.write("app/config.yaml", configmap("app-config"))
    repo.commit("hooks")
    create_app(kube, namespace, repo, "failing", "app")
    migrate = one_job(kube, namespace, "migrate-")
    finish_job(kube, namespace, migrate, succeeded=False)

    obj = wait_app(
        kube,
        namespace,
        "failing",
        lambda o: condition(o, "Ready").get("reason") == "HookFailed",
        "the hook failure reported",
    )
    message = condition(obj, "Ready")["message"]
    assert f"PreSync hook Job '{namespace}/{migrate}' failed" in message
    assert "migration exited 3" in message
    assert condition(obj, "Stalled")["status"] == "True"
    assert obj["status"]["sync"]["status"] == "OutOfSync"
    assert kube.get("v1", "ConfigMap", "app-config", namespace) is None  # nothing applied
    wait_until(
        lambda: kube.get("batch/v1", "Job", "cleanup", namespace) is not None,
        "the SyncFail hook runs",
    )
    finish_job(kube, namespace, "cleanup", succeeded=True)
    wait_until(
        lambda: kube.get("batch/v1", "Job", "cleanup", namespace) is None,
        "HookSucceeded deletes the SyncFail Job",
    )
    # Not tried again at this revision (no syncPolicy.retry): one PreSync Job only.
    time.sleep(2)
    assert len(jobs(kube, namespace, "migrate-")) == 1
    hooks = app(kube, namespace, "failing")["status"]["hooks"]
    assert hooks["phase"] == "Failed"
    assert {(i["phase"], i["state"]) for i in hooks["items"]} == {
        ("PreSync", "Failed"),
        ("SyncFail", "Succeeded"),
    }

    # `platform apps` and `platform diff` show the hooks and their phase.
    flags = ["--kubeconfig", str(cluster.kubeconfig), "-n", namespace]
    listed = run_platform("apps", *flags)
    assert "HOOKS" in listed.stdout, listed.stdout + listed.stderr
    as_json = run_platform("apps", *flags, "-o", "json")
    summary = next(e for e in json_events(as_json.stdout) if e["event"] == "summary")
    line = summary["applications"][0]["hooks"]
    assert line == f"Failed: 1/2 hooks succeeded; PreSync Job/{migrate} Failed", line
    diffed = run_platform("diff", "failing", *flags)
    assert diffed.returncode == 1, diffed.stderr  # app-config would be created
    assert "=== create: ConfigMap" in diffed.stdout
    assert "--- hook: Job" in diffed.stdout and "PreSync hook, wave 0" in diffed.stdout
    assert "SyncFail hook" in diffed.stdout and "HookSucceeded" in diffed.stdout


def test_helm_hook_annotations_are_mapped(
    reconciler: Reconciler, repo: GitRepo, kube: KubeClient, namespace: str
) -> None:
    repo.write(
        "app/chart.yaml",
        [
            job(
                name="db-init",
                annotations={
                    "helm.sh/hook": "pre-install,pre-upgrade",
                    "helm.sh/hook-weight": "-1",
                    "helm.sh/hook-delete-policy": "hook-succeeded",
                },
            ),
            job(
                name="db-migrate",
                annotations={"helm.sh/hook": "pre-upgrade", "helm.sh/hook-weight": "5"},
            ),
            job(name="notify", annotations={"helm.sh/hook": "post-install"}),
            job(name="chart-test", annotations={"helm.sh/hook": "test"}),
        ],
    )
    repo.write("app/config.yaml", configmap("app-config"))
    rev = repo.commit("helm hooks")
    create_app(kube, namespace, repo, "helmish", "app")

    wait_until(
        lambda: kube.get("batch/v1", "Job", "db-init", namespace) is not None, "weight -1 first"
    )
    time.sleep(1)
    assert kube.get("batch/v1", "Job", "db-migrate", namespace) is None  # weight 5 waits
    finish_job(kube, namespace, "db-init", succeeded=True)
    wait_until(lambda: kube.get("batch/v1", "Job", "db-migrate", namespace) is not None, "weight 5")
    wait_until(lambda: kube.get("batch/v1", "Job", "db-init", namespace) is None, "hook-succeeded")
    assert kube.get("v1", "ConfigMap", "app-config", namespace) is None
    finish_job(kube, namespace, "db-migrate", succeeded=True)
    wait_until(lambda: kube.get("batch/v1", "Job", "notify", namespace) is not None, "PostSync")
    assert kube.get("v1", "ConfigMap", "app-config", namespace) is not None
    finish_job(kube, namespace, "notify", succeeded=True)
    obj = wait_app(
        kube,
        namespace,
        "helmish",
        lambda o: o["status"].get("lastAppliedRevision") == rev and ready(o) == "True",
        "synced",
    )
    assert kube.get("batch/v1", "Job", "chart-test", namespace) is None  # test hooks skipped
    skipped = [i for i in obj["status"]["hooks"]["items"] if i["phase"] == "Skip"]
    assert [(i["name"], i["state"]) for i in skipped] == [("chart-test", "Skipped")]
    assert "not supported" in skipped[0]["message"]


def test_retry_backs_off_and_stops_at_the_limit(
    reconciler: Reconciler, repo: GitRepo, kube: KubeClient, namespace: str
) -> None:
    # An object the API server refuses every time: the sync fails on each attempt.
    bad = configmap("bad")
    bad["metadata"]["labels"] = {"not a valid label key!": "x"}
    repo.write("app/objects.yaml", [configmap("good"), bad])
    repo.commit("bad object")
    started = time.monotonic()
    create_app(
        kube,
        namespace,
        repo,
        "retrying",
        "app",
        sync_policy={
            "retry": {"limit": 2, "backoff": {"duration": "1s", "factor": 2, "maxDuration": "2s"}}
        },
    )
    obj = wait_app(
        kube,
        namespace,
        "retrying",
        lambda o: "gave up after 2 retries" in condition(o, "Ready").get("message", ""),
        "the retry limit reached",
    )
    elapsed = time.monotonic() - started
    assert elapsed >= 3.0, f"two retries of 1s and 2s took only {elapsed:.1f}s"
    message = condition(obj, "Ready")["message"]
    assert condition(obj, "Ready")["reason"] == "ApplyFailed"
    assert "bad" in message and "syncPolicy.retry.limit 2" in message
    assert condition(obj, "Stalled")["status"] == "True"
    events = [
        e
        for e in kube.list_objects("v1", "Event", namespace)
        if e.get("reason") == "ApplyFailed" or "retry" in e.get("message", "")
    ]
    assert events  # each failed attempt is told


def test_a_restart_mid_presync_goes_on_without_running_it_twice(
    reconciler: Reconciler, repo: GitRepo, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    repo.write(
        "app/hooks.yaml",
        [job(generate="migrate-", annotations={"argocd.argoproj.io/hook": "PreSync"})],
    )
    repo.write("app/config.yaml", configmap("app-config"))
    rev = repo.commit("hooks")
    create_app(kube, namespace, repo, "restarted", "app")
    migrate = one_job(kube, namespace, "migrate-")
    wait_app(
        kube,
        namespace,
        "restarted",
        lambda o: (
            ((o["status"].get("hooks") or {}).get("items") or [{}])[0].get("state") == "Running"
        ),
        "the PreSync hook recorded as Running",
    )
    processes.stop(reconciler.process)
    again = start_reconciler(tmp_path, reconciler.args[6:], name="again")
    try:
        time.sleep(2)  # the new process has looked at it
        assert [j["metadata"]["name"] for j in jobs(kube, namespace, "migrate-")] == [migrate]
        assert kube.get("v1", "ConfigMap", "app-config", namespace) is None
        finish_job(kube, namespace, migrate, succeeded=True)
        wait_app(
            kube,
            namespace,
            "restarted",
            lambda o: o["status"].get("lastAppliedRevision") == rev and ready(o) == "True",
            "synced after the restart",
        )
        assert [j["metadata"]["name"] for j in jobs(kube, namespace, "migrate-")] == [migrate]
    finally:
        processes.stop(again.process)


CHART_JOB = """apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-%(name)s
  annotations:
    helm.sh/hook: %(hook)s
    helm.sh/hook-weight: "%(weight)s"
    helm.sh/hook-delete-policy: %(policy)s
spec:
  managedBy: tests.example/job-runner
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: run
          image: registry.example/tool:1
"""
CHART_TEST = """apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-test
  annotations:
    helm.sh/hook: test
spec:
  containers:
    - name: test
      image: registry.example/curl:8
"""
CHART_CONFIG = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  greeting: {{ .Values.greeting | quote }}
"""


@pytest.mark.usefixtures("tool_reconciler")
def test_a_helm_chart_with_hooks_runs_them_in_order(
    repo: GitRepo, kube: KubeClient, namespace: str
) -> None:
    """Helm's hook annotations in a real chart, rendered by the real helm (issue 18's
    Helm sources): pre-install before the chart's objects, post-install after, weights
    as waves, hook-succeeded honoured, the test hook never applied."""
    write_chart(
        repo.work / "charts" / "hooked",
        "hooked",
        "0.1.0",
        {
            "migrate.yaml": CHART_JOB
            % {
                "name": "migrate",
                "hook": "pre-install,pre-upgrade",
                "weight": "-5",
                "policy": "before-hook-creation,hook-succeeded",
            },
            "notify.yaml": CHART_JOB
            % {
                "name": "notify",
                "hook": "post-install,post-upgrade",
                "weight": "0",
                "policy": "before-hook-creation",
            },
            "test.yaml": CHART_TEST,
            "settings.yaml": CHART_CONFIG,
        },
    )
    rev = repo.commit("a chart with hooks")
    create_app(kube, namespace, repo, "rel", "charts/hooked")
    wait_until(
        lambda: kube.get("batch/v1", "Job", "rel-migrate", namespace) is not None,
        "the pre-install hook",
        timeout=60,
    )
    assert stays_absent(kube, namespace, "rel-settings"), "applied before pre-install ended"
    finish_job(kube, namespace, "rel-migrate", succeeded=True)
    wait_until(
        lambda: kube.get("batch/v1", "Job", "rel-notify", namespace) is not None,
        "the post-install hook",
    )
    assert kube.get("v1", "ConfigMap", "rel-settings", namespace) is not None
    finish_job(kube, namespace, "rel-notify", succeeded=True)
    obj = wait_app(
        kube,
        namespace,
        "rel",
        lambda o: o["status"].get("lastAppliedRevision") == rev and ready(o) == "True",
        "synced",
    )
    wait_until(
        lambda: kube.get("batch/v1", "Job", "rel-migrate", namespace) is None, "hook-succeeded"
    )
    assert kube.get("batch/v1", "Job", "rel-notify", namespace) is not None  # kept
    assert kube.get("v1", "Pod", "rel-test", namespace) is None  # Helm test hook skipped
    states = {(i["phase"], i["name"], i["state"]) for i in obj["status"]["hooks"]["items"]}
    assert states == {
        ("PreSync", "rel-migrate", "Succeeded"),
        ("PostSync", "rel-notify", "Succeeded"),
        ("Skip", "rel-test", "Skipped"),
    }


@pytest.mark.usefixtures("enforcing")  # a reconciler enforcing projects (test_projects.py)
def test_a_hook_outside_the_project_is_refused_before_anything_runs(
    repo: GitRepo, kube: KubeClient, namespace: str
) -> None:
    """Hooks go through the project's rules like any object (policy.py): a PreSync hook
    aimed at another namespace refuses the whole sync, and no hook runs."""
    suffix = uuid.uuid4().hex[:6]
    mine, other = f"ha-{suffix}", f"hb-{suffix}"
    tenant_rbac(kube, mine)
    tenant_rbac(kube, other)
    kube.apply(tenant_project(namespace, "team", mine, repo.url), "test")
    sneaky = job(generate="sneak-", annotations={"argocd.argoproj.io/hook": "PreSync"})
    sneaky["metadata"]["namespace"] = other
    repo.write("team/all.yaml", [configmap("mine"), sneaky])
    repo.commit()
    kube.create(application(namespace, "team", repo, "team", mine, project="team"))
    obj = wait_app(
        kube,
        namespace,
        "team",
        lambda o: condition(o, "Ready").get("reason") == "PolicyDenied",
        "the project refuses the hook",
    )
    assert other in condition(obj, "Ready")["message"]
    assert jobs(kube, other, "sneak-") == []
    assert kube.get("v1", "ConfigMap", "mine", mine) is None


def test_syncfail_runs_once_while_a_failing_apply_is_retried(
    reconciler: Reconciler, repo: GitRepo, kube: KubeClient, namespace: str
) -> None:
    bad = configmap("bad")
    bad["metadata"]["labels"] = {"not a valid label key!": "x"}
    on_fail = job(generate="on-fail-", annotations={"argocd.argoproj.io/hook": "SyncFail"})
    repo.write("app/objects.yaml", [bad, on_fail])
    repo.commit("an object the API server refuses")
    create_app(kube, namespace, repo, "refused", "app")
    first = one_job(kube, namespace, "on-fail-")
    uid = kube.get("batch/v1", "Job", first, namespace)["metadata"]["uid"]  # type: ignore[index]
    time.sleep(6)  # the controller's backoff retries the apply: 1 s, 2 s, 4 s
    assert reconciler.output().count(f"failed to sync Application '{namespace}/refused' again") >= 2
    again = kube.get("batch/v1", "Job", first, namespace)
    assert again is not None and again["metadata"]["uid"] == uid
    assert len(jobs(kube, namespace, "on-fail-")) == 1
