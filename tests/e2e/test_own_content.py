"""`platform up --template URL#REF --package DIR` on the test platform, end to end: the
template's app and the package's app Synced and Healthy (kwok makes their pods ready),
a changed package as exactly one new commit (read from the git server), an unchanged
re-run as none, and `--upgrade-template --template DIR` as one more.

One platform for all of it (bringing one up is most of the cost). Real everything, as
in test_platform_up.py: kube-apiserver + etcd + kwok, the project's git server (which
also serves the template, behind its login, answered by the user's own git credential
helper), OpenBao, OpenTofu and the in-house components as host processes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import HostPlatform
from tests.support.cli import json_events, run_platform
from tests.support.gitserver import READER
from tests.support.processes import wait_for

pytestmark = pytest.mark.e2e

APPLICATION = """\
apiVersion: gitops.platform.local/v1alpha1
kind: Application
metadata: {name: hello, namespace: platform-system}
spec:
  project: platform
  source: {repoURL: "${GIT_REPO_URL}", path: apps/hello, targetRevision: HEAD}
  destination: {namespace: hello}
  syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}
"""


def deployment(name: str) -> str:
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: web, image: "example.invalid/{name}:1"}}]
"""


def config_map(name: str, colour: str) -> str:
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n"
        f'data: {{colour: {colour}, url: "https://{name}.${{DOMAIN}}"}}\n'
    )


def write(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


def commits(host: HostPlatform, work: Path) -> list[str]:
    """The subjects of the platform repository's main branch on the git server."""
    if not work.exists():
        host.git.git("clone", "-q", host.git.repo_url("gitops"), str(work))
    host.git.git("pull", "-q", "--ff-only", cwd=work)
    return host.git.git("log", "--format=%s", cwd=work).stdout.splitlines()


def apps(names: set[str]) -> dict[str, dict[str, Any]]:
    rows = json_events(run_platform("apps", "-o", "json").stdout)[-1]["applications"]
    return {r["name"]: r for r in rows if r["name"] in names}


def colour(host: HostPlatform, namespace: str, name: str) -> str:
    out = host.cluster.kubectl("get", "configmap", name, "-n", namespace, "-o", "json", check=False)
    return str(json.loads(out)["data"]["colour"]) if out.strip() else ""


def up(*args: str, env: dict[str, str]) -> dict[str, Any]:
    started = time.monotonic()
    result = run_platform("up", "-o", "json", *args, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = json_events(result.stdout)[-1]
    summary["took"] = time.monotonic() - started
    return summary


def test_template_from_git_and_a_package_one_commit_per_change(
    host_platform: HostPlatform, tmp_path: Path
) -> None:
    host = host_platform
    template = write(
        tmp_path / "template",
        {
            "README.md": "# Workshop platform ${CLUSTER}\n",
            "registry/CLUSTER/hello.yaml": APPLICATION,
            "apps/hello/deployment.yaml": deployment("hello"),
            "apps/hello/config.yaml": config_map("hello", "blue"),
        },
    )
    repo = host.git.create_repo("workshop")
    host.git.git("init", "-q", "-b", "ws-1", cwd=template)
    host.git.git("add", "-A", cwd=template)
    host.git.git("commit", "-qm", "workshop template", cwd=template)
    host.git.git("push", "-q", repo, "HEAD:refs/heads/ws-1", cwd=template)
    # The template repository wants a login: the user's own git credential helper has it.
    store = tmp_path / "git-credentials"
    store.write_text(host.git.url.replace("//", f"//{READER}:{host.git.passwords[READER]}@") + "\n")
    (tmp_path / "gitconfig").write_text(f"[credential]\n\thelper = store --file={store}\n")
    env = {"GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig")}
    shop = write(
        tmp_path / "packages/shop",
        {"deployment.yaml": deployment("shop"), "config.yaml": config_map("shop", "red")},
    )

    first = up("--template", f"{repo}#ws-1", "--package", str(shop), env=env)
    print(f"\nplatform up --template URL --package DIR: {first['took']:.1f}s")
    rows = apps({"hello", "shop", "demo"})
    assert set(rows) == {"hello", "shop"}, rows  # the template's app, not the demo
    assert all(r["sync"] == "Synced" and r["health"] == "Healthy" for r in rows.values()), rows
    assert colour(host, "shop", "shop") == "red" and colour(host, "hello", "hello") == "blue"
    work = tmp_path / "work"
    log = commits(host, work)
    assert len(log) == 1 and f"seed from {repo}#ws-1" in log[0] and "shop" in log[0], log

    # A changed package, `platform up` without flags (they were saved): one new commit,
    # delivered when up returns.
    (shop / "config.yaml").write_text(config_map("shop", "green"))
    second = up(env=env)
    seed = next(s for s in second["stages"] if s["stage"] == "seed")
    assert seed["outcome"] == "done", second["stages"]
    log = commits(host, work)
    assert len(log) == 2 and log[0].startswith("platform up: update package(s) shop"), log
    assert colour(host, "shop", "shop") == "green"
    rows = apps({"shop"})
    assert rows["shop"]["sync"] == "Synced" and rows["shop"]["health"] == "Healthy", rows
    print(f"changed package to applied (one platform up): {second['took']:.1f}s")

    # Unchanged: no commit, every stage only verified.
    third = up(env=env)
    assert {s["outcome"] for s in third["stages"]} == {"verified"}, third["stages"]
    assert len(commits(host, work)) == 2
    print(f"no-op platform up with a package: {third['took']:.1f}s")

    # The template from a directory, applied to the seeded repository: one more commit.
    (template / "apps/hello/config.yaml").write_text(config_map("hello", "yellow"))
    up("--upgrade-template", "--template", str(template), env=env)
    log = commits(host, work)
    assert len(log) == 3 and f"upgrade from {template.name}" in log[0], log
    wait_for(
        lambda: colour(host, "hello", "hello") == "yellow",
        timeout=60,
        what="the template's change in the cluster",
    )
