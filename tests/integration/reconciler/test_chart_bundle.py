"""The offline bundle's charts end to end (issue 18), with the real `helm`, a real API
server and the real reconciler: charts saved by `platform images save`'s code from a
chart repository on 127.0.0.1, that server stopped, the bundle preloaded by the
reconciler stage's code as ConfigMaps, and the Applications sync Healthy offline (an
exact version and an open `*` one). A tampered preload is refused by its digest."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from bootstrap.docker.charts_bundle import ChartRef, save_charts
from bootstrap.stages.reconciler import apply_chart_bundle
from stacks.kube.client import KubeClient
from stacks.reconciler.install import NAMESPACE
from stacks.reconciler.sources.preload import LABEL, configmap_name
from tests.integration.reconciler.charts import (
    DEPLOYMENT,
    SETTINGS,
    chart_repository,
    configmap_template,
    package,
    write_chart,
)
from tests.integration.reconciler.conftest import Apps, condition
from tests.integration.reconciler.tools import (  # noqa: F401 - fixtures
    create_app,
    health_status,
    tool_env,
    tool_reconciler,
)
from tests.support.binaries import require_binary

pytestmark = pytest.mark.integration


@pytest.mark.usefixtures("tool_reconciler")
def test_bundled_charts_sync_offline_and_a_tampered_one_is_refused(
    apps: Apps, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    helm = require_binary("helm")
    served = tmp_path / "served"
    for version in ("1.0.0", "2.0.0"):
        chart = write_chart(
            tmp_path / version / "demo",
            "demo",
            version,
            {
                "deploy.yaml": DEPLOYMENT,
                "settings.yaml": SETTINGS,
                "extra.yaml": configmap_template(f"v{version[0]}"),
            },
        )
        package(helm, chart, served)
    bundle = tmp_path / "images.tar.charts.tar"
    with chart_repository(helm, served) as url:
        refs = [
            ChartRef(url, "demo", "1.0.0", "pinned"),
            ChartRef(url, "demo", "*", "open"),
        ]
        saved = save_charts(bundle, refs, str(helm))
    # The server is gone: from here on the chart repository cannot be reached.
    assert not saved.missing, saved.missing
    assert [(c.chart, c.version) for c in saved.saved] == [("demo", "1.0.0"), ("demo", "2.0.0")]
    assert [v for _, v in saved.resolved] == ["2.0.0"]

    if kube.get("v1", "Namespace", NAMESPACE) is None:
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    warnings: list[str] = []
    try:
        assert apply_chart_bundle(kube, bundle, warnings.append) == 2
        assert apply_chart_bundle(kube, bundle, warnings.append) == 2  # idempotent
        assert warnings == []
        preloaded = kube.list_objects("v1", "ConfigMap", NAMESPACE, label_selector=f"{LABEL}=true")
        assert len([o for o in preloaded if o["metadata"]["name"].startswith("chart-demo-")]) == 2

        create_app(
            kube,
            namespace,
            "offline-pinned",
            {"repoURL": url, "chart": "demo", "targetRevision": "2.0.0"},
        )
        create_app(
            kube,
            namespace,
            "offline-open",
            {"repoURL": url, "chart": "demo", "targetRevision": "*"},
        )
        for name in ("offline-pinned", "offline-open"):
            apps.wait_synced(name, "2.0.0", timeout=90)
            apps.wait(name, lambda o: health_status(o) == "Healthy", "Healthy", 60)
        assert kube.get("v1", "ConfigMap", "offline-pinned-v2", namespace) is not None
        assert kube.get("v1", "ConfigMap", "offline-open-settings", namespace) is not None

        # A preload whose bytes were changed after saving is refused by its digest.
        tampered = configmap_name(url, "demo", "1.0.0")
        kube.merge_patch(
            "v1",
            "ConfigMap",
            tampered,
            {"binaryData": {"chart.tgz": base64.b64encode(b"not the chart").decode()}},
            NAMESPACE,
        )
        create_app(
            kube,
            namespace,
            "offline-tampered",
            {"repoURL": url, "chart": "demo", "targetRevision": "1.0.0"},
        )
        failed = apps.wait(
            "offline-tampered",
            lambda o: "sha256" in condition(o, "Ready").get("message", ""),
            "refused by its digest",
            90,
        )
        message = condition(failed, "Ready")["message"]
        assert "does not match its recorded sha256" in message
        assert kube.get("v1", "ConfigMap", "offline-tampered-v1", namespace) is None
        # The others stay synced.
        assert health_status(apps.get("offline-pinned")) == "Healthy"
    finally:
        for obj in kube.list_objects("v1", "ConfigMap", NAMESPACE, label_selector=f"{LABEL}=true"):
            kube.delete("v1", "ConfigMap", obj["metadata"]["name"], NAMESPACE)
