"""Fixtures for the reconciler's integration tests: real API server, real git, real process.

`reconciler` starts `.venv/bin/platform run reconciler` as a subprocess watching only the
test's namespace (so tests never see each other's Applications); `repo` is a working
clone of a bare repository to commit and push from; `apps` creates Applications and
waits on their status through the real API.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from stacks.kube.client import KubeClient
from stacks.reconciler.api import API_VERSION, KIND
from tests.support import processes
from tests.support.cli import PLATFORM
from tests.support.kwok import KwokCluster

MANIFESTS = Path(__file__).resolve().parents[3] / "stacks" / "reconciler" / "manifests"
WEBHOOK_SECRET = "test-webhook-secret"


@pytest.fixture(scope="session")
def crd(cluster: KwokCluster) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(MANIFESTS / "10-crd.yaml"))
    cluster.wait_established("applications.gitops.platform.local")


class GitRepo:
    """A working clone of a bare repository: write files, commit, push."""

    def __init__(self, bare: Path, work: Path) -> None:
        self.bare = bare
        self.work = work
        self.url = f"file://{bare}"
        subprocess.run(
            ["git", "clone", "-q", str(bare), str(work)], check=True, capture_output=True
        )
        self._git("config", "user.email", "test@example.com")
        self._git("config", "user.name", "test")
        self._git("checkout", "-q", "-B", "main")

    def _git(self, *args: str) -> str:
        result = subprocess.run(
            ["git", *args], cwd=self.work, check=True, capture_output=True, text=True
        )
        return result.stdout.strip()

    def write(self, path: str, content: str | list[dict[str, Any]] | dict[str, Any]) -> None:
        target = self.work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, list):
            content = yaml.safe_dump_all(content, sort_keys=False)
        elif isinstance(content, dict):
            content = yaml.safe_dump(content, sort_keys=False)
        target.write_text(content)

    def remove(self, path: str) -> None:
        self._git("rm", "-q", "-r", path)

    def commit(self, message: str = "change") -> str:
        self._git("add", "-A")
        self._git("commit", "-q", "--allow-empty", "-m", message)
        self._git("push", "-q", "origin", "HEAD:main")
        return self._git("rev-parse", "HEAD")


@pytest.fixture
def repo(bare_repo: Path, tmp_path: Path) -> GitRepo:
    return GitRepo(bare_repo, tmp_path / "work")


@dataclass
class Reconciler:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def metric(self, name: str) -> float:
        """The sum of the /metrics samples whose line starts with `name` (a family, or
        one series with its labels)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name)
        )


def start_reconciler(
    tmp_path: Path,
    args: list[str],
    name: str = "reconciler",
    env: dict[str, str] | None = None,
) -> Reconciler:
    port = processes.free_port()
    secret = tmp_path / "webhook-secret"
    secret.write_text(WEBHOOK_SECRET)
    log = tmp_path / f"{name}.log"
    full = [
        str(PLATFORM),
        "run",
        "reconciler",
        f"--listen=127.0.0.1:{port}",
        f"--cache-dir={tmp_path / (name + '-cache')}",
        f"--webhook-secret-file={secret}",
        *args,
    ]
    if not any(a in ("--projects", "--no-projects") for a in args):
        # Tests of projects opt in (test_projects.py); the others sync as the reconciler.
        full.append("--no-projects")
    process = processes.start(full, log, env=env)
    import urllib.request

    def healthy() -> bool:
        if process.poll() is not None:
            raise RuntimeError(
                f"reconciler exited {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
            return bool(answer.status == 200)

    processes.wait_for(healthy, timeout=30, what="the reconciler's /healthz")
    return Reconciler(process, port, log, full)


@pytest.fixture
def reconciler(
    cluster: KwokCluster, crd: None, namespace: str, tmp_path: Path
) -> Iterator[Reconciler]:
    running = start_reconciler(
        tmp_path,
        [
            f"--kubeconfig={cluster.kubeconfig}",
            f"--watch-namespace={namespace}",
            "--no-leader-elect",
            "--log-level=DEBUG",
        ],
    )
    yield running
    processes.stop(running.process)
    if os.environ.get("SHOW_RECONCILER_LOG"):
        print(running.output()[-20000:])


class Apps:
    """Create Applications in the test namespace and wait on their status."""

    def __init__(self, kube: KubeClient, namespace: str, repo_url: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.repo_url = repo_url

    def create(
        self,
        name: str,
        path: str,
        *,
        prune: bool = True,
        self_heal: bool = True,
        allow_empty: bool = False,
        automated: bool = True,
        create_namespace: str = "",
        depends_on: list[str] | None = None,
        interval: str = "3m",
        timeout: str = "",
        finalizer: bool = False,
        annotations: dict[str, str] | None = None,
        repo_url: str | None = None,
        destination: str | None = None,
    ) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "source": {
                "repoURL": repo_url or self.repo_url,
                "path": path,
                "targetRevision": "main",
            },
            "destination": {
                "namespace": destination
                if destination is not None
                else (create_namespace or self.namespace)
            },
            "interval": interval,
        }
        if automated:
            spec["syncPolicy"] = {
                "automated": {"prune": prune, "selfHeal": self_heal, "allowEmpty": allow_empty}
            }
        if create_namespace:
            spec.setdefault("syncPolicy", {})["syncOptions"] = ["CreateNamespace=true"]
        if depends_on:
            spec["dependsOn"] = [{"name": d} for d in depends_on]
        if timeout:
            spec["timeout"] = timeout
        meta: dict[str, Any] = {"name": name, "namespace": self.namespace}
        if finalizer:
            meta["finalizers"] = ["resources-finalizer.gitops.platform.local"]
        if annotations:
            meta["annotations"] = annotations
        return self.kube.create(
            {"apiVersion": API_VERSION, "kind": KIND, "metadata": meta, "spec": spec}
        )

    def get(self, name: str) -> dict[str, Any]:
        obj = self.kube.get(API_VERSION, KIND, name, self.namespace)
        assert obj is not None, f"Application {name} not found"
        return obj

    def annotate(self, name: str, **annotations: str | None) -> None:
        self.kube.merge_patch(
            API_VERSION, KIND, name, {"metadata": {"annotations": annotations}}, self.namespace
        )

    def wait(
        self,
        name: str,
        predicate: Callable[[dict[str, Any]], bool],
        what: str,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        last: dict[str, Any] = {}

        def check() -> bool:
            nonlocal last
            last = self.get(name)
            return predicate(last)

        try:
            processes.wait_for(check, timeout=timeout, what=f"{name}: {what}", interval=0.05)
        except TimeoutError as error:
            raise AssertionError(
                f"{error}\nstatus: {json.dumps(last.get('status'), indent=1)[:4000]}"
            ) from None
        return last

    def wait_synced(self, name: str, revision: str, timeout: float = 30.0) -> dict[str, Any]:
        return self.wait(
            name,
            lambda o: (
                (o.get("status") or {}).get("lastAppliedRevision") == revision
                and ready(o) == "True"
            ),
            f"synced and Ready at {revision[:8]}",
            timeout,
        )


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return {}


def ready(obj: dict[str, Any]) -> str:
    return str(condition(obj, "Ready").get("status", ""))


@pytest.fixture
def apps(kube: KubeClient, namespace: str, repo: GitRepo) -> Apps:
    return Apps(kube, namespace, repo.url)


def configmap(
    name: str, data: dict[str, str] | None = None, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {"k": name}}


def deployment(
    name: str, replicas: int = 1, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if annotations:
        meta["annotations"] = dict(annotations)
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "app", "image": "registry.example/app:1"}],
                    "tolerations": [
                        {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
                    ],
                },
            },
        },
    }


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> float:
    start = time.monotonic()
    processes.wait_for(predicate, timeout=timeout, what=what, interval=0.05)
    return time.monotonic() - start
