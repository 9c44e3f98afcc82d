"""Benchmark the GitOps reconciler against `kubectl apply --server-side`, in one run.

    .venv/bin/python bench/reconciler_bench.py [--objects 500] [--rounds 5] [--pushes 15]
        [--apps 100] [--baseline REV] [--only-scale]

One kwokctl cluster (real kube-apiserver and etcd), one real git server (`platform run
gitserver`, webhooks to the reconciler) and `platform run reconciler` as a subprocess.
The repository holds `--objects` objects (ConfigMaps, Services, ServiceAccounts; 10 per
file) under one path.

- first sync: ours = creating the Application until its status says Synced at the
  revision; peer = `kubectl apply --server-side -f DIR` of the same files into another
  namespace (wall time of the command). Goal: ours/kubectl <= 1.5.
- re-sync of the unchanged objects: ours = refresh annotation until handled; peer = the
  same kubectl command again. Medians of `--rounds`. Goal: <= 0.5.
- push to applied: `git push` of a one-object change until the API server has it
  (webhook path). Goal p50 < 1 s.
- manual delete to restored: delete a managed ConfigMap until it is back. Goal p50 < 2 s.
- RSS of the reconciler while managing the objects. Goal < 150 MB.
- many Applications on one repository (issue 14): `--apps` Applications, one small
  path each (apps/app-NNN: one ConfigMap), all on one repository and branch, webhook
  path. A commit to one app (the first, middle and last in name order, one push each):
  `git push` start until the API server has that app's change; goal <= 1 s. A commit
  to all of them: until every app's change is in the API server; goal <= 3 s. Also the
  `git fetch` runs per push (from /metrics). The peer is the reconciler of git revision
  `--baseline` (exported with `git archive`, run the same way) measured in the same run,
  on its own repository and namespace with the same content.
- one Application of `--large` objects (issue 14; default 10,000 ConfigMaps with one
  short key, 1,000 per file): ours = creating the Application until its status says
  Synced at the revision; peer = `kubectl apply --server-side -f DIR` of the same files
  into another namespace, in the same run. Also the reconciler's peak RSS (VmHWM) and
  the size of the Application object with its status. `--only-large` runs only this.
Results go in bench/README.md, section "## Reconciler".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from stacks.kube.client import KubeClient  # noqa: E402
from tests.support import processes  # noqa: E402
from tests.support.gitserver import READER, GitServer  # noqa: E402
from tests.support.kwok import KwokCluster, created_cluster  # noqa: E402

PLATFORM = Path(sys.executable).parent / "platform"
API = "gitops.platform.local/v1alpha1"
SECRET = "bench-webhook-secret"  # noqa: S105 - a throwaway test value


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def objects(count: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for i in range(count):
        kind = i % 10
        if kind < 8:
            items.append(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": f"cm-{i}", "labels": {"bench": "x"}},
                    "data": {"index": str(i), "text": "x" * 200},
                }
            )
        elif kind == 8:
            items.append(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": f"svc-{i}"},
                    "spec": {
                        "ports": [{"port": 80, "targetPort": 8080}],
                        "selector": {"app": f"a{i}"},
                    },
                }
            )
        else:
            items.append(
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": f"sa-{i}"}}
            )
    return items


def write_files(directory: Path, items: list[dict[str, Any]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(items), 10):
        (directory / f"objects-{start // 10:03d}.yaml").write_text(
            yaml.safe_dump_all(items[start : start + 10])
        )


def wait(predicate: Any, timeout: float, interval: float = 0.02) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(interval)
    raise TimeoutError("benchmark step timed out")


def status_of(kube: KubeClient, name: str, namespace: str) -> dict[str, Any]:
    obj = kube.get(API, "Application", name, namespace) or {}
    return dict(obj.get("status") or {})


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def fetch_count(port: int) -> int | None:
    """`git fetch` runs so far (None: a reconciler without the metric)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith("platform_reconciler_git_fetches_total "):
                return int(float(line.split()[1]))
    return None


def knows_projects(code: Path) -> bool:
    """Whether the reconciler in `code` has projects (issue 19), hence `--no-projects`: a
    baseline from before them is started without the flag it would refuse."""
    program = code / "stacks" / "reconciler" / "program.py"
    return program.is_file() and "--no-projects" in program.read_text()


def export_baseline(revision: str, target: Path) -> Path:
    """The project's code at `revision`, to run the reconciler of that revision."""
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "stacks", "bootstrap"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def scale(
    label: str,
    command: list[str],
    code: Path | None,
    git: GitServer,
    port: int,
    kube: KubeClient,
    cluster: KwokCluster,
    work: Path,
    count: int,
) -> dict[str, Any]:
    """`count` Applications on one repository: a commit to one app, then to all of them.

    `command` starts a reconciler (ours, or the baseline's with its code in `code`) that
    listens on `port`, where the git server's webhook goes; it is stopped before
    returning."""
    namespace = f"scale-{label}"
    cluster.kubectl("create", "namespace", namespace)
    url = git.create_repo(f"scale-{label}")
    clone = work / f"scale-{label}"
    git.git("clone", "-q", url, str(clone))
    git.git("checkout", "-q", "-B", "main", cwd=clone)

    def write(i: int, value: str) -> None:
        path = clone / "apps" / f"app-{i:03d}" / "cm.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": f"cm-{i:03d}"},
                    "data": {"value": value},
                }
            )
        )

    def commit(message: str) -> None:
        git.git("add", "-A", cwd=clone)
        git.git("commit", "-q", "-m", message, cwd=clone)

    def values() -> dict[str, str]:
        return {
            str(o["metadata"]["name"]): str((o.get("data") or {}).get("value"))
            for o in kube.list_objects("v1", "ConfigMap", namespace)
        }

    for i in range(count):
        write(i, "v0")
    commit("scale v0")
    git.git("push", "-q", "origin", "HEAD:main", cwd=clone)
    process = processes.start(
        [*command, f"--watch-namespace={namespace}", f"--cache-dir={work / f'cache-{label}'}"],
        work / f"reconciler-{label}.log",
        # The baseline's code first on the path (and as the working directory, since
        # `python -c` puts the working directory before PYTHONPATH).
        env={"PYTHONPATH": str(code)} if code is not None else None,
        cwd=code,
    )
    try:
        processes.wait_for(lambda: healthy(port), 60, f"the {label} reconciler")
        for i in range(count):
            kube.create(
                {
                    "apiVersion": API,
                    "kind": "Application",
                    "metadata": {"name": f"app-{i:03d}", "namespace": namespace},
                    "spec": {
                        "source": {
                            "repoURL": url,
                            "path": f"apps/app-{i:03d}",
                            "targetRevision": "main",
                        },
                        "destination": {"namespace": namespace},
                        "interval": "1h",
                        "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
                    },
                }
            )
        wait(lambda: len([v for v in values().values() if v == "v0"]) == count, 600, 0.2)
        time.sleep(2.0)  # settled: statuses written, watches quiet
        one: dict[str, float] = {}
        fetches: list[int] = []
        for round_, i in enumerate(sorted({0, count // 2, count - 1}), start=1):
            write(i, f"one-{round_}")
            commit(f"one app: {i}")
            before = fetch_count(port)
            start = time.monotonic()
            git.git("push", "-q", "origin", "HEAD:main", cwd=clone)
            wait(lambda i=i, r=round_: values().get(f"cm-{i:03d}") == f"one-{r}", 60, 0.02)
            one[f"app-{i:03d}"] = round(time.monotonic() - start, 3)
            time.sleep(3.0 + count * 0.03)  # the others' revision bumps finish
            after = fetch_count(port)
            if before is not None and after is not None:
                fetches.append(after - before)
        for i in range(count):
            write(i, "all")
        commit("all apps")
        before = fetch_count(port)
        start = time.monotonic()
        git.git("push", "-q", "origin", "HEAD:main", cwd=clone)
        # Looked at every 50 ms: listing 100 objects more often loads the API server the
        # reconciler is writing to.
        wait(lambda: list(values().values()).count("all") == count, 120, 0.05)
        all_apps = round(time.monotonic() - start, 3)
        # And until every Application's status says so (the Events and status writes
        # that follow the applies).
        head = git.git("rev-parse", "HEAD", cwd=clone).stdout.strip()

        def reported() -> bool:
            listed = kube.list_objects(API, "Application", namespace)
            return (
                sum(1 for a in listed if (a.get("status") or {}).get("lastAppliedRevision") == head)
                == count
            )

        wait(reported, 120, 0.1)
        all_status = round(time.monotonic() - start, 3)
        after = fetch_count(port)
        if before is not None and after is not None:
            fetches.append(after - before)
        return {
            "one_app_s": one,
            "all_apps_s": all_apps,
            "all_apps_status_s": all_status,
            "fetches_per_push": fetches,
        }
    finally:
        processes.stop(process)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def large(
    run_args: list[str],
    git: GitServer,
    port: int,
    kube: KubeClient,
    cluster: KwokCluster,
    work: Path,
    count: int,
) -> dict[str, Any]:
    """One Application of `count` ConfigMaps: its first sync against kubectl's."""
    url = git.create_repo("large")
    clone = work / "large"
    git.git("clone", "-q", url, str(clone))
    git.git("checkout", "-q", "-B", "main", cwd=clone)
    directory = clone / "big"
    directory.mkdir()
    for first in range(0, count, 1000):
        items = [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"cm-{i:05d}"},
                "data": {"k": "v"},
            }
            for i in range(first, min(count, first + 1000))
        ]
        (directory / f"cm-{first // 1000:02d}.yaml").write_text(yaml.safe_dump_all(items))
    git.git("add", "-A", cwd=clone)
    git.git("commit", "-q", "-m", "large", cwd=clone)
    git.git("push", "-q", "origin", "HEAD:main", cwd=clone)
    revision = git.git("rev-parse", "HEAD", cwd=clone).stdout.strip()
    for ns in ("large-kubectl", "large-ours", "large-apps"):
        cluster.kubectl("create", "namespace", ns)
    start = time.monotonic()
    cluster.kubectl("apply", "--server-side", "-n", "large-kubectl", "-f", str(directory))
    kubectl_s = time.monotonic() - start
    process = processes.start(
        [str(PLATFORM), *run_args, f"--cache-dir={work / 'cache-large'}"],
        work / "reconciler-large.log",
    )
    try:
        processes.wait_for(lambda: healthy(port), 60, "the reconciler")
        time.sleep(1.0)
        start = time.monotonic()
        kube.create(
            {
                "apiVersion": API,
                "kind": "Application",
                "metadata": {"name": "large", "namespace": "large-apps"},
                "spec": {
                    "source": {"repoURL": url, "path": "big", "targetRevision": "main"},
                    "destination": {"namespace": "large-ours"},
                    "interval": "1h",
                    "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
                },
            }
        )
        # Looked at every 0.5 s: a 200 KB object read 50 times a second would load the
        # API server the reconciler is writing 10,000 objects to.
        wait(
            lambda: (
                (s := status_of(kube, "large", "large-apps")).get("lastAppliedRevision") == revision
                and s["sync"]["status"] == "Synced"
            ),
            1800,
            0.5,
        )
        ours_s = time.monotonic() - start
        obj = kube.get(API, "Application", "large", "large-apps") or {}
        return {
            "objects": count,
            "kubectl_s": round(kubectl_s, 2),
            "ours_s": round(ours_s, 2),
            "ratio": round(ours_s / kubectl_s, 2),
            "application_bytes": len(json.dumps(obj, separators=(",", ":"))),
            "peak_rss_mib": round(peak_rss_mib(process.pid), 1),
            "rss_end_mib": round(rss_mib(process.pid), 1),
        }
    finally:
        processes.stop(process)
        for ns in ("large-kubectl", "large-ours", "large-apps"):
            cluster.kubectl("delete", "namespace", ns, "--wait=false")


def healthy(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
        return bool(answer.status == 200)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pushes", type=int, default=15)
    parser.add_argument("--apps", type=int, default=100, help="Applications of the scale run")
    parser.add_argument(
        "--baseline", default="", help="git revision whose reconciler is the scale run's peer"
    )
    parser.add_argument(
        "--only-scale", action="store_true", help="only the many-Applications scenario"
    )
    parser.add_argument(
        "--large", type=int, default=10_000, help="objects of the one-large-Application run"
    )
    parser.add_argument(
        "--only-large", action="store_true", help="only the one-large-Application scenario"
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="the reconciler's --workers (0: its default)"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="reconciler-bench-"))
    cluster = created_cluster("bench", work / "kwok")
    kube = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    reconciler: subprocess.Popen[bytes] | None = None
    git = GitServer(workdir=work / "git", webhook_urls=(), webhook_secret=SECRET.encode())
    results: dict[str, Any] = {"objects": args.objects}
    try:
        cluster.kubectl(
            "apply", "--server-side", "-f", str(ROOT / "stacks/reconciler/manifests/10-crd.yaml")
        )
        cluster.kubectl(
            "wait", "--for=condition=Established", "crd/applications.gitops.platform.local"
        )
        for ns in ("bench-kubectl", "bench-ours", "bench-apps"):
            cluster.kubectl("create", "namespace", ns)

        port = processes.free_port()
        git.webhook_urls = (f"http://127.0.0.1:{port}/webhook",)
        git.start()
        creds = work / "git-credentials"
        creds.write_text(f"http://{READER}:{git.passwords[READER]}@127.0.0.1:{git.port}\n")
        secret_file = work / "webhook-secret"
        secret_file.write_text(SECRET)
        run_args = [
            "run",
            "reconciler",
            f"--kubeconfig={cluster.kubeconfig}",
            "--no-leader-elect",
            "--no-projects",  # measures syncing, as before projects (issue 19)
            f"--listen=127.0.0.1:{port}",
            f"--webhook-secret-file={secret_file}",
            f"--git-credentials-file={creds}",
        ]
        if args.workers:
            run_args.append(f"--workers={args.workers}")
        if args.only_large:
            results["large"] = large(run_args, git, port, kube, cluster, work, args.large)
            return report(results, args)
        if args.baseline:
            code = export_baseline(args.baseline, work / "baseline")
            baseline_args = [a for a in run_args if a != "--no-projects" or knows_projects(code)]
            results["scale_baseline"] = {
                "revision": args.baseline,
                **scale(
                    "baseline",
                    [
                        sys.executable,
                        "-c",
                        "import sys; from bootstrap.cli.main import main; sys.exit(main())",
                        *baseline_args,
                    ],
                    code,
                    git,
                    port,
                    kube,
                    cluster,
                    work,
                    args.apps,
                ),
            }
        results["scale"] = scale(
            "ours", [str(PLATFORM), *run_args], None, git, port, kube, cluster, work, args.apps
        )
        results["apps"] = args.apps
        if args.only_scale:
            return report(results, args)
        url = git.create_repo("gitops")
        clone = work / "clone"
        git.git("clone", "-q", url, str(clone))
        git.git("checkout", "-q", "-B", "main", cwd=clone)
        items = objects(args.objects)
        write_files(clone / "bench", items)
        (clone / "push").mkdir()
        (clone / "push" / "cm.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "pushed"},
                    "data": {"round": "0"},
                }
            )
        )
        git.git("add", "-A", cwd=clone)
        git.git("commit", "-q", "-m", "bench objects", cwd=clone)
        git.git("push", "-q", "origin", "HEAD:main", cwd=clone)
        revision = git.git("rev-parse", "HEAD", cwd=clone).stdout.strip()

        # ---- the peer: kubectl apply --server-side of the same files ----------------------
        def kubectl_apply() -> float:
            start = time.monotonic()
            cluster.kubectl(
                "apply", "--server-side", "-n", "bench-kubectl", "-f", str(clone / "bench")
            )
            return time.monotonic() - start

        kubectl_first = kubectl_apply()
        kubectl_again = [kubectl_apply() for _ in range(args.rounds)]

        # ---- ours ------------------------------------------------------------------------
        reconciler = processes.start(
            [PLATFORM, *run_args, f"--cache-dir={work / 'cache'}"],
            work / "reconciler.log",
        )
        processes.wait_for(lambda: healthy(port), 30, "the reconciler")
        time.sleep(1.0)  # idle, watches established
        rss_idle = rss_mib(reconciler.pid)

        def app(name: str, namespace: str, path: str) -> dict[str, Any]:
            return {
                "apiVersion": API,
                "kind": "Application",
                "metadata": {"name": name, "namespace": "bench-apps"},
                "spec": {
                    "source": {"repoURL": url, "path": path, "targetRevision": "main"},
                    "destination": {"namespace": namespace},
                    "interval": "1h",
                    "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
                },
            }

        start = time.monotonic()
        kube.create(app("bench", "bench-ours", "bench"))
        wait(
            lambda: (
                (s := status_of(kube, "bench", "bench-apps")).get("lastAppliedRevision") == revision
                and s["sync"]["status"] == "Synced"
            ),
            300,
            0.02,
        )
        ours_first = time.monotonic() - start
        rss_after_sync = rss_mib(reconciler.pid)

        ours_again = []
        for i in range(args.rounds):
            token = f"bench-{i}-{uuid.uuid4().hex[:6]}"
            start = time.monotonic()
            kube.merge_patch(
                API,
                "Application",
                "bench",
                {"metadata": {"annotations": {"gitops.platform.local/refresh": token}}},
                "bench-apps",
            )
            wait(
                lambda token=token: (
                    status_of(kube, "bench", "bench-apps").get("lastHandledRefresh") == token
                ),
                120,
                0.01,
            )
            ours_again.append(time.monotonic() - start)

        # ---- push to applied (webhook) -----------------------------------------------------
        kube.create(app("push", "bench-ours", "push"))
        wait(lambda: kube.get("v1", "ConfigMap", "pushed", "bench-ours") is not None, 60)
        push_latency = []
        for i in range(1, args.pushes + 1):
            (clone / "push" / "cm.yaml").write_text(
                yaml.safe_dump(
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": "pushed"},
                        "data": {"round": str(i)},
                    }
                )
            )
            git.git("commit", "-q", "-am", f"push {i}", cwd=clone)
            start = time.monotonic()
            git.git("push", "-q", "origin", "HEAD:main", cwd=clone)
            wait(
                lambda i=i: (
                    (kube.get("v1", "ConfigMap", "pushed", "bench-ours") or {})
                    .get("data", {})
                    .get("round")
                    == str(i)
                ),
                60,
                0.01,
            )
            push_latency.append(time.monotonic() - start)

        # ---- manual delete to restored -----------------------------------------------------
        heal = []
        for i in range(args.pushes):
            name = f"cm-{i * 10}"
            before = kube.get("v1", "ConfigMap", name, "bench-ours")
            assert before is not None
            start = time.monotonic()
            kube.delete("v1", "ConfigMap", name, "bench-ours")
            wait(
                lambda name=name, uid=before["metadata"]["uid"]: (
                    (kube.get("v1", "ConfigMap", name, "bench-ours") or {})
                    .get("metadata", {})
                    .get("uid")
                    not in (None, uid)
                ),
                60,
                0.01,
            )
            heal.append(time.monotonic() - start)
        rss_end = rss_mib(reconciler.pid)

        results.update(
            kubectl_first_s=round(kubectl_first, 3),
            ours_first_s=round(ours_first, 3),
            first_ratio=round(ours_first / kubectl_first, 2),
            kubectl_resync_median_s=round(statistics.median(kubectl_again), 3),
            ours_resync_median_s=round(statistics.median(ours_again), 3),
            resync_ratio=round(statistics.median(ours_again) / statistics.median(kubectl_again), 3),
            push_p50_s=round(pct(push_latency, 0.5), 3),
            push_p95_s=round(pct(push_latency, 0.95), 3),
            restore_p50_s=round(pct(heal, 0.5), 3),
            restore_p95_s=round(pct(heal, 0.95), 3),
            rss_idle_mib=round(rss_idle, 1),
            rss_after_first_sync_mib=round(rss_after_sync, 1),
            rss_end_mib=round(rss_end, 1),
        )
    finally:
        if reconciler is not None:
            processes.stop(reconciler)
        git.stop()
        kube.close()
        cluster.delete()
        if not processes.leaked():
            shutil.rmtree(work, ignore_errors=True)
    return report(results, args)


def report(results: dict[str, Any], args: argparse.Namespace) -> int:
    print(json.dumps(results, indent=1))
    if "large" in results:
        got = results["large"]
        print(
            f"one Application of {got['objects']} objects, first sync: ours {got['ours_s']} s, "
            f"kubectl {got['kubectl_s']} s -> {got['ratio']}x; Application object "
            f"{got['application_bytes']} bytes; reconciler peak RSS {got['peak_rss_mib']} MiB"
        )
    if args.only_large:
        print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()}")
        return 0
    for label in ("scale_baseline", "scale"):
        if label in results:
            got = results[label]
            who = f"baseline {got['revision']}" if label == "scale_baseline" else "ours"
            print(
                f"{results['apps']} apps on one repository, {who}: one app's commit applied in "
                f"{got['one_app_s']} s (goal <= 1 s); all apps' commit applied in "
                f"{got['all_apps_s']} s (goal <= 3 s), every status at the commit "
                f"{got.get('all_apps_status_s')} s; git fetches per push {got['fetches_per_push']}"
            )
    if args.only_scale:
        print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()}")
        return 0
    print(
        f"first sync of {args.objects} objects: ours {results['ours_first_s']} s, kubectl {results['kubectl_first_s']} s -> {results['first_ratio']}x (goal <= 1.5)"
    )
    print(
        f"re-sync unchanged: ours {results['ours_resync_median_s']} s, kubectl {results['kubectl_resync_median_s']} s -> {results['resync_ratio']}x (goal <= 0.5)"
    )
    print(
        f"push to applied: p50 {results['push_p50_s']} s, p95 {results['push_p95_s']} s (goal p50 < 1 s)"
    )
    print(
        f"manual delete to restored: p50 {results['restore_p50_s']} s, p95 {results['restore_p95_s']} s (goal p50 < 2 s)"
    )
    print(
        f"reconciler RSS: idle {results['rss_idle_mib']} MiB, after first sync {results['rss_after_first_sync_mib']} MiB, end {results['rss_end_mib']} MiB (goal < 150 MB)"
    )
    print(f"cpus: {os.cpu_count()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
