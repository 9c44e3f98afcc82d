"""Benchmark workshop tenants (issue 19): N `platform tenant add` in a row, and the time
until all N tenants' first syncs are done.

    .venv/bin/python bench/tenants_bench.py [--tenants 20]

One kwokctl cluster (real kube-apiserver, etcd, controller-manager), the real git server
(`platform run gitserver --repo-users gitops:tenants/git-users.yaml`, push webhooks to
the reconciler) and `platform run reconciler --projects` watching platform-system, with
the shipped AppProject CRD and projects, and a root Application (project `platform`,
interval 3m: pushes reach it by webhook) following registry/bench/ as `platform up`
sets it up. Then `platform tenant add ws-NN` runs N times in a row as a user runs it
(the CLI, git.url set), each one a repository, a first commit and a commit to the GitOps
repository.

Reported: the wall time of the N commands (and per command), and the time from the
first command's start until every `tenant-ws-NN` Application is Ready at a revision
(its first sync, as its ServiceAccount), and from the last command's end until then.
Results go in bench/README.md, section "## Tenants".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from stacks.kube.client import KubeClient  # noqa: E402
from tests.support import processes  # noqa: E402
from tests.support.cli import PLATFORM  # noqa: E402
from tests.support.gitserver import ADMIN, READER, GitServer  # noqa: E402
from tests.support.kwok import created_cluster  # noqa: E402

SECRET = "bench-webhook-secret"  # noqa: S105 - a throwaway test key
MANIFESTS = ROOT / "stacks" / "reconciler" / "manifests"
CONTROL = "platform-system"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tenants-bench-"))
    cluster = created_cluster("bench", work / "kwok")
    kube = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    port = processes.free_port()
    git = GitServer(
        workdir=work / "git",
        webhook_urls=(f"http://127.0.0.1:{port}/webhook",),
        webhook_secret=SECRET.encode(),
        extra_args=("--repo-users", "gitops:tenants/git-users.yaml"),
    )
    reconciler = None
    try:
        for name in ("10-crd.yaml", "00-namespace.yaml", "11-crd-appproject.yaml"):
            cluster.kubectl("apply", "--server-side", "-f", str(MANIFESTS / name))
        for crd in ("applications", "appprojects"):
            cluster.kubectl(
                "wait", "--for=condition=Established", f"crd/{crd}.gitops.platform.local"
            )
        cluster.kubectl("apply", "--server-side", "-f", str(MANIFESTS / "50-projects.yaml"))
        git.start()
        git.create_repo("gitops")
        seed = work / "seed"
        git.git("init", "-q", "-b", "main", str(seed))
        (seed / "registry" / "bench").mkdir(parents=True)
        (seed / "registry" / "bench" / "README.md").write_text("tenants go here\n")
        git.git("add", "-A", cwd=seed)
        git.git("commit", "-q", "-m", "seed", cwd=seed)
        git.git("push", "-q", git.repo_url("gitops"), "HEAD:main", cwd=seed)
        credentials = work / "git-credentials"
        credentials.write_text(f"http://{READER}:{git.passwords[READER]}@127.0.0.1:{git.port}\n")
        secret_file = work / "webhook-secret"
        secret_file.write_text(SECRET)
        reconciler = processes.start(
            [
                str(PLATFORM),
                "run",
                "reconciler",
                f"--kubeconfig={cluster.kubeconfig}",
                "--no-leader-elect",
                "--projects",
                f"--namespace={CONTROL}",
                f"--watch-namespace={CONTROL}",
                f"--listen=127.0.0.1:{port}",
                f"--webhook-secret-file={secret_file}",
                f"--git-credentials-file={credentials}",
                f"--cache-dir={work / 'cache'}",
            ],
            work / "reconciler.log",
        )
        kube.create(
            {
                "apiVersion": "gitops.platform.local/v1alpha1",
                "kind": "Application",
                "metadata": {"name": "root", "namespace": CONTROL},
                "spec": {
                    "project": "platform",
                    "source": {"repoURL": git.repo_url("gitops"), "path": "registry/bench"},
                    "destination": {"namespace": CONTROL},
                    "syncPolicy": {
                        "automated": {"prune": True, "selfHeal": True, "allowEmpty": True}
                    },
                    "interval": "3m",
                },
            }
        )
        password_file = work / "admin-password"
        password_file.write_text(git.passwords[ADMIN])
        env = dict(os.environ)
        env.update(
            {
                "PLATFORM_ENGINE": "existing",
                "PLATFORM_KUBECONFIG": str(cluster.kubeconfig),
                "PLATFORM_GIT_URL": git.url,
                "PLATFORM_GIT_USERNAME": ADMIN,
                "PLATFORM_GIT_PASSWORD_FILE": str(password_file),
                "PLATFORM_NAME": "bench",
                "NO_COLOR": "1",
                "HOME": str(work / "home"),
            }
        )
        names = [f"ws-{i:02d}" for i in range(args.tenants)]
        durations = []
        started = time.monotonic()
        for name in names:
            begun = time.monotonic()
            done = subprocess.run(
                [str(PLATFORM), "tenant", "add", name],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            durations.append(time.monotonic() - begun)
            if done.returncode != 0:
                raise RuntimeError(f"tenant add {name} failed: {done.stdout}{done.stderr}")
        added = time.monotonic()

        def all_synced() -> bool:
            apps = kube.list_objects("gitops.platform.local/v1alpha1", "Application", CONTROL)
            ready = {
                a["metadata"]["name"]
                for a in apps
                if (a.get("status") or {}).get("lastAppliedRevision")
                and any(
                    c.get("type") == "Ready" and c.get("status") == "True"
                    for c in (a.get("status") or {}).get("conditions") or []
                )
            }
            return all(f"tenant-{n}" in ready for n in names)

        processes.wait_for(all_synced, timeout=600, what="every tenant's first sync", interval=0.2)
        synced = time.monotonic()
        result = {
            "tenants": args.tenants,
            "adds_total_s": round(added - started, 2),
            "add_median_s": round(statistics.median(durations), 2),
            "add_max_s": round(max(durations), 2),
            "first_syncs_done_after_first_add_s": round(synced - started, 2),
            "first_syncs_done_after_last_add_s": round(synced - added, 2),
            "load": os.getloadavg()[0],
        }
        print(json.dumps(result, indent=1))
        return 0
    finally:
        if reconciler is not None:
            processes.stop(reconciler)
        git.stop()
        cluster.delete()


if __name__ == "__main__":
    sys.exit(main())
