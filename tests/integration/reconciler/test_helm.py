"""Helm sources with the real `helm`, a real API server and real chart servers (issue
18): a chart repository on 127.0.0.1 (install with values, upgrade by targetRevision,
prune, health), a chart in git with a value file from the same repository, a chart in
a local OCI registry (`crane registry serve`), and a failing, a hanging and an oversized
chart, each failing only its own Application while another keeps syncing."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from stacks.kube.client import KubeClient
from tests.integration.reconciler.charts import (
    DEPLOYMENT,
    SETTINGS,
    chart_repository,
    configmap_template,
    package,
    write_chart,
)
from tests.integration.reconciler.conftest import (
    Apps,
    GitRepo,
    Reconciler,
    condition,
    configmap,
)
from tests.integration.reconciler.tools import (  # noqa: F401 - fixtures
    create_app,
    health_status,
    patch_source,
    start_tool_reconciler,
    tool_env,
    tool_reconciler,
)
from tests.support import processes
from tests.support.binaries import require_binary
from tests.support.cli import run_platform
from tests.support.kwok import KwokCluster

pytestmark = pytest.mark.integration


@pytest.mark.usefixtures("tool_reconciler")
def test_chart_repository_install_upgrade_prune_health(
    cluster: KwokCluster,
    apps: Apps,
    kube: KubeClient,
    namespace: str,
    tmp_path: Path,
    tool_env: dict[str, str],  # noqa: F811
) -> None:
    helm = require_binary("helm")
    served = tmp_path / "served"
    v1 = write_chart(
        tmp_path / "v1" / "demo",
        "demo",
        "1.0.0",
        {
            "deploy.yaml": DEPLOYMENT,
            "settings.yaml": SETTINGS,
            "old.yaml": configmap_template("old"),
        },
    )
    v2 = write_chart(
        tmp_path / "v2" / "demo",
        "demo",
        "2.0.0",
        {
            "deploy.yaml": DEPLOYMENT,
            "settings.yaml": SETTINGS,
            "new.yaml": configmap_template("new"),
        },
    )
    package(helm, v1, served)
    package(helm, v2, served)
    with chart_repository(helm, served) as url:
        create_app(
            kube,
            namespace,
            "repo-chart",
            {
                "repoURL": url,
                "chart": "demo",
                "targetRevision": "1.0.0",
                "helm": {
                    "releaseName": "rel",
                    "valuesObject": {"greeting": "from-values-object"},
                    "parameters": [{"name": "color", "value": "blue"}],
                },
            },
        )
        synced = apps.wait_synced("repo-chart", "1.0.0", timeout=60)
        settings = kube.get("v1", "ConfigMap", "rel-settings", namespace)
        assert settings is not None
        assert settings["data"] == {"greeting": "from-values-object", "color": "blue"}
        assert kube.get("v1", "ConfigMap", "rel-old", namespace) is not None
        assert synced["status"]["sync"]["revision"] == "1.0.0"
        apps.wait("repo-chart", lambda o: health_status(o) == "Healthy", "Healthy", 60)

        # Upgrade: a new object applied, the one the old version had pruned.
        patch_source(kube, namespace, "repo-chart", {"targetRevision": "2.0.0"})
        apps.wait_synced("repo-chart", "2.0.0", timeout=60)
        assert kube.get("v1", "ConfigMap", "rel-new", namespace) is not None
        assert kube.get("v1", "ConfigMap", "rel-old", namespace) is None
        web = kube.get("apps/v1", "Deployment", "rel-web", namespace)
        assert web is not None
        assert web["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":2.0.0")

        # `platform diff` renders the chart the same way: nothing to change now.
        flags = ["--kubeconfig", str(cluster.kubeconfig), "-n", namespace]
        clean = run_platform("diff", "repo-chart", *flags, env=tool_env)
        assert clean.returncode == 0 and "in sync with git" in clean.stdout, (
            clean.stdout + clean.stderr
        )


@pytest.mark.usefixtures("tool_reconciler")
def test_a_chart_that_does_not_match_its_index_digest_is_not_used(
    apps: Apps, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    helm = require_binary("helm")
    served = tmp_path / "served"
    package(
        helm, write_chart(tmp_path / "a" / "demo", "demo", "1.0.0", {"s.yaml": SETTINGS}), served
    )
    with chart_repository(helm, served) as url:
        # The archive is swapped after indexing: another chart under the same name.
        other = package(
            helm,
            write_chart(
                tmp_path / "b" / "demo", "demo", "1.0.0", {"o.yaml": configmap_template("evil")}
            ),
            tmp_path / "other",
        )
        (served / "demo-1.0.0.tgz").write_bytes(other.read_bytes())
        create_app(
            kube,
            namespace,
            "tampered",
            {"repoURL": url, "chart": "demo", "targetRevision": "1.0.0"},
        )
        failed = apps.wait(
            "tampered",
            lambda o: "digest" in condition(o, "Ready").get("message", ""),
            "refused",
            60,
        )
        assert "does not match the sha256 digest" in condition(failed, "Ready")["message"]
        assert kube.get("v1", "ConfigMap", "tampered-evil", namespace) is None


def test_private_chart_repository_with_a_repository_secret(
    tool_reconciler: Reconciler,  # noqa: F811
    apps: Apps,
    kube: KubeClient,
    namespace: str,
    tmp_path: Path,
) -> None:
    """Credentials from a label-selected Secret (Argo CD's repository Secrets); the
    password appears in no status and no log line."""
    helm = require_binary("helm")
    password = "chart-pass-5ecret"
    served = tmp_path / "private"
    package(
        helm,
        write_chart(tmp_path / "p" / "private", "private", "0.2.0", {"s.yaml": SETTINGS}),
        served,
    )
    with chart_repository(helm, served, credentials=("reader", password)) as url:
        create_app(
            kube,
            namespace,
            "private",
            {"repoURL": url, "chart": "private", "targetRevision": "0.2.0"},
        )
        refused = apps.wait(
            "private", lambda o: "HTTP 401" in condition(o, "Ready").get("message", ""), "401", 60
        )
        assert "repository Secret" in condition(refused, "Ready")["message"]
        kube.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": "charts",
                    "namespace": namespace,
                    "labels": {"gitops.platform.local/secret-type": "repo-creds"},
                },
                "stringData": {"url": url, "username": "reader", "password": password},
            }
        )
        apps.annotate("private", **{"gitops.platform.local/refresh": "with-secret"})
        synced = apps.wait_synced("private", "0.2.0", timeout=60)
        assert kube.get("v1", "ConfigMap", "private-settings", namespace) is not None
    assert password not in json.dumps(synced)
    assert password not in tool_reconciler.output()


@pytest.mark.usefixtures("tool_reconciler")
def test_chart_in_git_with_a_value_file_from_the_same_repository(
    repo: GitRepo, apps: Apps, kube: KubeClient, namespace: str
) -> None:
    kube_template = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-kube\n"
        "data:\n  version: {{ .Capabilities.KubeVersion.Version | quote }}\n"
    )
    write_chart(
        repo.work / "charts" / "demo",
        "demo",
        "0.1.0",
        {"settings.yaml": SETTINGS, "kube.yaml": kube_template},
    )
    repo.write("envs/prod/values.yaml", "greeting: prod-greeting\n")
    rev = repo.commit("a chart and a value file")
    create_app(
        kube,
        namespace,
        "git-chart",
        {
            "repoURL": repo.url,
            "path": "charts/demo",
            "targetRevision": "main",
            "helm": {"valueFiles": ["../../envs/prod/values.yaml"]},
        },
    )
    apps.wait_synced("git-chart", rev, timeout=60)
    # No releaseName: the release is named after the Application, as in Argo CD.
    settings = kube.get("v1", "ConfigMap", "git-chart-settings", namespace)
    assert settings is not None and settings["data"]["greeting"] == "prod-greeting"
    assert settings["data"]["color"] == "red"  # the chart's own values.yaml
    # Rendered for the destination's Kubernetes version, as Argo CD does.
    seen = kube.get("v1", "ConfigMap", "git-chart-kube", namespace)
    assert seen is not None and seen["data"]["version"] == kube.server_version()["gitVersion"]

    # A chart found by its Chart.yaml alone (no source.helm) renders too.
    create_app(
        kube,
        namespace,
        "found",
        {"repoURL": repo.url, "path": "charts/demo", "targetRevision": "main"},
    )
    apps.wait_synced("found", rev, timeout=60)
    assert kube.get("v1", "ConfigMap", "found-settings", namespace) is not None


@pytest.mark.usefixtures("tool_reconciler")
def test_chart_from_an_oci_registry(
    apps: Apps, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    helm = require_binary("helm")
    crane = require_binary("crane")
    port = processes.free_port()
    registry = processes.start(
        [crane, "registry", "serve", "--address", f"127.0.0.1:{port}"], tmp_path / "registry.log"
    )
    try:
        chart = write_chart(
            tmp_path / "oci" / "ocidemo", "ocidemo", "3.1.0", {"settings.yaml": SETTINGS}
        )
        archive = package(helm, chart, tmp_path / "oci-out")
        env = {**os.environ, "HOME": str(tmp_path), "HELM_CONFIG_HOME": str(tmp_path / "helm")}
        deadline = time.monotonic() + 20
        while True:
            pushed = subprocess.run(
                [str(helm), "push", str(archive), f"oci://127.0.0.1:{port}/charts", "--plain-http"],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            if pushed.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # the registry is still starting
        assert pushed.returncode == 0, pushed.stderr
        # A repository Secret (Argo CD's shape): this registry speaks plain HTTP.
        kube.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": "local-registry",
                    "namespace": namespace,
                    "labels": {"gitops.platform.local/secret-type": "repository"},
                },
                "data": {
                    "url": base64.b64encode(f"oci://127.0.0.1:{port}/charts".encode()).decode(),
                    "insecureOCIForceHttp": base64.b64encode(b"true").decode(),
                },
            }
        )
        create_app(
            kube,
            namespace,
            "oci-chart",
            {
                "repoURL": f"oci://127.0.0.1:{port}/charts",
                "chart": "ocidemo",
                "targetRevision": "3.1.0",
                "helm": {"values": "greeting: from-oci\n"},
            },
        )
        apps.wait_synced("oci-chart", "3.1.0", timeout=60)
        settings = kube.get("v1", "ConfigMap", "oci-chart-settings", namespace)
        assert settings is not None and settings["data"]["greeting"] == "from-oci"
    finally:
        processes.stop(registry)


HANGING = "{{- range until 100000 }}{{- range until 100000 }}{{- end }}{{- end }}\n"
OVERSIZED = (
    "{{- range $i := until 2000 }}\n---\napiVersion: v1\nkind: ConfigMap\n"
    'metadata:\n  name: big-{{ $i }}\ndata:\n  blob: {{ repeat 1000 "x" | quote }}\n{{- end }}\n'
)


def test_failing_hanging_and_oversized_charts_fail_only_their_application(
    cluster: KwokCluster,
    crd: None,
    repo: GitRepo,
    apps: Apps,
    kube: KubeClient,
    namespace: str,
    tmp_path: Path,
    tool_env: dict[str, str],  # noqa: F811
) -> None:
    running = start_tool_reconciler(
        cluster,
        namespace,
        tmp_path,
        # Small bounds keep the test quick: helm prints only once it has rendered all.
        {
            **tool_env,
            "PLATFORM_RECONCILER_RENDER_TIMEOUT": "4",
            "PLATFORM_RECONCILER_RENDER_MAX_BYTES": str(1024 * 1024),
        },
    )
    try:
        write_chart(repo.work / "bad", "bad", "0.1.0", {"settings.yaml": SETTINGS})
        write_chart(repo.work / "hang", "hang", "0.1.0", {"hang.yaml": HANGING})
        write_chart(repo.work / "big", "big", "0.1.0", {"big.yaml": OVERSIZED})
        repo.write("plain/cm.yaml", configmap("plain-one"))
        rev = repo.commit("charts")
        for name in ("bad", "hang", "big"):
            create_app(
                kube, namespace, name, {"repoURL": repo.url, "path": name, "targetRevision": "main"}
            )
        apps.create("plain", "plain")
        apps.wait_synced("bad", rev, timeout=60)
        assert kube.get("v1", "ConfigMap", "bad-settings", namespace) is not None

        # The good chart breaks: the tool's own message, nothing pruned.
        (repo.work / "bad" / "templates" / "settings.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.nope.missing }}\n"
        )
        repo.write("plain/cm.yaml", [configmap("plain-one"), configmap("plain-two")])
        rev2 = repo.commit("break one chart, change the plain app")
        for name in ("bad", "plain"):
            apps.annotate(name, **{"gitops.platform.local/refresh": rev2})

        def failed(name: str) -> str:
            obj = apps.wait(
                name,
                lambda o: (
                    condition(o, "Ready").get("status") == "False"
                    and "helm template" in condition(o, "Ready").get("message", "")
                ),
                "failed with helm's message",
                timeout=90,
            )
            return str(condition(obj, "Ready")["message"])

        bad = failed("bad")
        assert "nil pointer" in bad or "nope" in bad, bad
        assert "nothing was applied or pruned" in bad
        assert kube.get("v1", "ConfigMap", "bad-settings", namespace) is not None
        hang = failed("hang")
        assert "did not finish within 4s" in hang, hang
        big = failed("big")
        assert "more than 1 MiB of manifests" in big, big
        apps.wait_synced("plain", rev2, timeout=60)
        assert kube.get("v1", "ConfigMap", "plain-two", namespace) is not None
    finally:
        processes.stop(running.process)
