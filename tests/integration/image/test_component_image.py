"""The component image really works: built by `platform image build` on a base made here
from Debian packages, run as a container (`platform run reconciler`) against the test
cluster's API server, it syncs an Application from the project's git server."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from bootstrap.docker.build import BUILD_LABEL, deps_tag
from bootstrap.images import COMPONENT_IMAGE
from stacks.kube.client import KubeClient
from stacks.reconciler.api import API_VERSION, KIND
from stacks.reconciler.install import FIELD_MANAGER_BOOTSTRAP, git_credentials_line, manifests
from tests.support import processes
from tests.support.componentimage import ComponentImage, build_with_cli, docker
from tests.support.gitserver import READER, GitServer
from tests.support.kwok import KwokCluster

pytestmark = pytest.mark.integration


def test_image_runs_as_non_root_with_git_and_every_component(
    component_image: ComponentImage,
) -> None:
    config = json.loads(docker("image", "inspect", COMPONENT_IMAGE))[0]["Config"]
    assert config["Entrypoint"] == ["platform", "run"]
    assert config["User"] == "65532:65532"
    out = docker(
        "run", "--rm", "--read-only", "--tmpfs", "/tmp", COMPONENT_IMAGE, "--help", timeout=120
    )
    for component in ("gitserver", "reconciler", "secrets", "certs", "dns", "unsealer"):
        assert component in out
    tools = docker(
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        COMPONENT_IMAGE,
        "-c",
        'id -u; git --version; test -x "$(git --exec-path)/git-http-backend" && echo backend',
        timeout=120,
    )
    uid, git_version, backend = tools.split("\n")[:3]
    assert uid == "65532" and git_version.startswith("git version") and backend == "backend"


def _flat_kubeconfig(cluster: KwokCluster, target: Path) -> Path:
    """The test cluster's kubeconfig with certificates inlined, readable by uid 65532."""
    target.write_text(cluster.kubectl("config", "view", "--flatten", "--minify"))
    target.chmod(0o644)
    return target


def test_reconciler_container_syncs_an_application_from_the_git_server(
    component_image: ComponentImage,
    cluster: KwokCluster,
    kube: KubeClient,
    namespace: str,
    git_server: GitServer,
    tmp_path: Path,
) -> None:
    # The CRDs and the `platform` project, from the installer's own manifests; the project
    # in the test's namespace, which the container is told holds its AppProjects.
    shipped = manifests(COMPONENT_IMAGE)
    crds = [o for o in shipped if o["kind"] == "CustomResourceDefinition"]
    names = sorted(c["metadata"]["name"] for c in crds)
    assert names == ["applications.gitops.platform.local", "appprojects.gitops.platform.local"]
    for crd in crds:
        kube.apply(crd, FIELD_MANAGER_BOOTSTRAP)
    for name in names:
        cluster.wait_established(name)
    project = next(
        o for o in shipped if o["kind"] == "AppProject" and o["metadata"]["name"] == "platform"
    )
    project["metadata"]["namespace"] = namespace
    kube.apply(project, FIELD_MANAGER_BOOTSTRAP)

    # A repository on the project's git server with one ConfigMap.
    url = git_server.create_repo("apps")
    work = tmp_path / "work"
    git_server.git("clone", "-q", url, str(work))
    marker = uuid.uuid4().hex
    (work / "app").mkdir()
    (work / "app" / "configmap.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "from-git"},
                "data": {"marker": marker},
            }
        )
    )
    git_server.git("-C", str(work), "checkout", "-q", "-B", "main")
    git_server.git("-C", str(work), "add", "-A")
    git_server.git("-C", str(work), "commit", "-q", "-m", "one configmap")
    git_server.git("-C", str(work), "push", "-q", "origin", "HEAD:main")
    revision = git_server.git("-C", str(work), "rev-parse", "HEAD").stdout.strip()

    # The read-only user's credentials and the kubeconfig, mounted read-only.
    secrets = tmp_path / "mounts"
    secrets.mkdir()
    credentials = secrets / "credentials"
    credentials.write_text(
        git_credentials_line(git_server.url, READER, git_server.passwords[READER])
    )
    credentials.chmod(0o644)
    _flat_kubeconfig(cluster, secrets / "kubeconfig")
    port = processes.free_port()
    name = f"platform-reconciler-test-{uuid.uuid4().hex[:8]}"
    docker(
        "run", "-d", "--name", name, "--network", "host",
        "--read-only", "--tmpfs", "/tmp",
        "-v", f"{secrets}:/etc/platform:ro",
        COMPONENT_IMAGE, "reconciler",
        "--kubeconfig=/etc/platform/kubeconfig",
        "--git-credentials-file=/etc/platform/credentials",
        f"--watch-namespace={namespace}",
        f"--namespace={namespace}",
        f"--listen=127.0.0.1:{port}",
        "--cache-dir=/tmp/cache",
        "--no-leader-elect",
    )  # fmt: skip
    try:
        kube.create(
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "metadata": {"name": "from-container", "namespace": namespace},
                "spec": {
                    "project": "platform",
                    "source": {"repoURL": url, "path": "app", "targetRevision": "main"},
                    "destination": {"namespace": namespace},
                    "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
                    "interval": "1m",
                },
            }
        )

        def synced() -> bool:
            state = docker("inspect", "-f", "{{.State.Running}}", name).strip()
            if state != "true":
                raise AssertionError(f"the container stopped:\n{docker('logs', name, check=False)}")
            app = kube.get(API_VERSION, KIND, "from-container", namespace) or {}
            status = app.get("status") or {}
            return bool(status.get("lastAppliedRevision") == revision)

        try:
            processes.wait_for(synced, timeout=90, what="the Application synced by the container")
        except TimeoutError as error:
            logs = subprocess.run(
                ["docker", "logs", "--tail", "60", name], capture_output=True, text=True
            )
            raise AssertionError(f"{error}\n{logs.stdout}{logs.stderr}") from None
        configmap = kube.get("v1", "ConfigMap", "from-git", namespace)
        assert configmap is not None and configmap["data"] == {"marker": marker}
        app = kube.get(API_VERSION, KIND, "from-container", namespace) or {}
        assert app["status"]["sync"]["status"] == "Synced", app["status"]
    finally:
        docker("rm", "-f", name, check=False)


def test_a_rebuild_reuses_the_dependency_layer_and_leaves_no_untagged_images(
    component_image: ComponentImage, base_image: str
) -> None:
    """A second `platform image build` (new project wheel, same dependencies) keeps the
    dependency stage's image as it was, and what the first build left untagged is gone."""
    deps = deps_tag(COMPONENT_IMAGE)
    deps_before = docker("image", "inspect", "-f", "{{.Id}}", deps).strip()
    layers_before = json.loads(docker("image", "inspect", COMPONENT_IMAGE))[0]["RootFS"]["Layers"]
    summary = build_with_cli(base_image)
    assert docker("image", "inspect", "-f", "{{.Id}}", deps).strip() == deps_before
    # The final image was rebuilt (the project wheel differs), so the first build's final
    # image lost its tag; the clean-up removed it with the other untagged build images.
    assert summary["id"] != component_image.summary["id"]
    assert int(str(summary["reclaimed_bytes"])) > 0
    leftovers = docker(
        "images", "-q", "--filter", "dangling=true", "--filter", f"label={BUILD_LABEL}"
    ).split()
    assert leftovers == []
    # Base, git and dependency layers are the very same; only the project layer is new.
    layers = json.loads(docker("image", "inspect", COMPONENT_IMAGE))[0]["RootFS"]["Layers"]
    assert layers[:-1] == layers_before[:-1]
    assert layers[-1] != layers_before[-1]
