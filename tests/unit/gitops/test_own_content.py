"""The user's own content in the GitOps repository, rendered (no git, no cluster): a
template replaces gitops-template/'s content but keeps the platform's own part; packages
become apps/<name>/ plus an Application; clashes, bad files and hostile trees fail with
a sentence naming the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from bootstrap.config import ConfigError, load_settings
from bootstrap.gitops import tree
from bootstrap.gitops.packages import (
    PACKAGE_ANNOTATION,
    Package,
    check_clashes,
    package_mark,
    render_packages,
)
from bootstrap.gitops.repo import applications, omitted_components, platform_values, render
from stacks.errors import PermanentError


def values() -> dict[str, str]:
    return platform_values(
        load_settings(environ={"PLATFORM_NAME": "ws1", "PLATFORM_DOMAIN": "ex.test"})
    )


def write(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


APP = (
    "apiVersion: gitops.platform.local/v1alpha1\nkind: Application\n"
    "metadata: {name: hello, namespace: platform-system}\n"
    "spec: {source: {repoURL: '${GIT_REPO_URL}', path: apps/hello}}\n"
)


def test_a_template_replaces_the_content_and_keeps_the_platforms_part(tmp_path: Path) -> None:
    template = write(
        tmp_path / "workshop",
        {
            "registry/CLUSTER/hello.yaml": APP,
            "apps/hello/cm.yaml": "kind: ConfigMap\ndata: {host: 'hello.${DOMAIN}'}\n",
            "README.md": "# ${CLUSTER}\n",
            # A chart's templates are Go templates: not parsed, `${...}` of others kept.
            "apps/chart/Chart.yaml": "name: c\nversion: 0.1.0\n",
            "apps/chart/templates/x.yaml": "{{ if .Values.x }}\nv: ${SHELL} ${DOMAIN}\n{{ end }}\n",
        },
    )
    settings = load_settings(environ={"PLATFORM_NAME": "ws1", "PLATFORM_GIT_URL": "http://g"})
    files = render(platform_values(settings), omitted_components(settings), template)
    names = {app["metadata"]["name"] for _, app in applications(files)}
    # The demo is gone, the platform's components stay (gitserver: external git).
    assert "demo" not in names and "apps/demo/30-deployment.yaml" not in files
    assert {"hello", "reconciler", "secrets", "secrets-config", "vault"} <= names
    assert "gitserver" not in names
    assert files["README.md"] == b"# ws1\n"
    assert b"hello.localdev.me" in files["apps/hello/cm.yaml"]
    assert (
        files["apps/chart/templates/x.yaml"]
        == b"{{ if .Values.x }}\nv: ${SHELL} localdev.me\n{{ end }}\n"
    )
    assert "platform/reconciler/30-deployment.yaml" in files or any(
        p.startswith("platform/reconciler/") for p in files
    )


def test_a_template_file_overrides_the_platforms_own(tmp_path: Path) -> None:
    builtin = render(values())
    reconciler_app = builtin["registry/ws1/reconciler.yaml"].decode().replace("3m", "7m")
    template = write(
        tmp_path / "t",
        {"registry/CLUSTER/hello.yaml": APP, "apps/hello/cm.yaml": "kind: ConfigMap\n"},
    )
    (template / "registry/CLUSTER/reconciler.yaml").write_text(reconciler_app)
    files = render(values(), template=template)
    assert files["registry/ws1/reconciler.yaml"] == reconciler_app.encode()


def test_not_a_template_says_what_one_holds(tmp_path: Path) -> None:
    template = write(tmp_path / "apps-only", {"apps/x/cm.yaml": "kind: ConfigMap\n"})
    with pytest.raises(ConfigError, match=r"apps-only is not a platform template") as caught:
        render(values(), template=template)
    assert "registry/CLUSTER/" in caught.value.hint and "apps/<name>/" in caught.value.hint


def test_applications_of_other_repositories_and_charts_need_no_local_path(tmp_path: Path) -> None:
    template = write(
        tmp_path / "t",
        {
            "registry/CLUSTER/ext.yaml": "apiVersion: gitops.platform.local/v1alpha1\n"
            "kind: Application\nmetadata: {name: ext}\n"
            "spec: {source: {repoURL: 'https://charts.example', chart: nginx}}\n---\n"
            "apiVersion: gitops.platform.local/v1alpha1\nkind: Application\n"
            "metadata: {name: other}\n"
            "spec: {source: {repoURL: 'https://git.example/x.git', path: deploy}}\n",
        },
    )
    render(values(), template=template)
    (template / "registry/CLUSTER/mine.yaml").write_text(APP.replace("hello", "missing"))
    with pytest.raises(PermanentError, match="names path 'apps/missing'"):
        render(values(), template=template)


def test_a_package_becomes_an_app_and_an_application(tmp_path: Path) -> None:
    shop = write(
        tmp_path / "shop",
        {
            "deploy.yaml": "kind: ConfigMap\ndata: {host: 'shop.${DOMAIN}', sh: 'echo ${HOME}'}\n",
            "sub/more.yaml": "kind: ConfigMap\n",
            "logo.png": "\x89PNG",
        },
    )
    files = render_packages([Package("shop", shop)], values())
    assert (
        files["apps/shop/deploy.yaml"]
        == b"kind: ConfigMap\ndata: {host: 'shop.ex.test', sh: 'echo ${HOME}'}\n"
    )
    assert "apps/shop/sub/more.yaml" in files and "apps/shop/logo.png" in files
    app = yaml.safe_load(files["registry/ws1/shop.yaml"])
    assert app["metadata"]["name"] == "shop"
    assert app["metadata"]["annotations"][PACKAGE_ANNOTATION] == "shop"
    assert app["spec"]["source"]["path"] == "apps/shop"
    assert app["spec"]["source"]["repoURL"] == values()["GIT_REPO_URL"]
    assert app["spec"]["source"]["directory"] == {"recurse": True}  # manifests in sub/
    assert app["spec"]["destination"]["namespace"] == "shop"
    # Shaped like the demo's Application in gitops-template/.
    demo = yaml.safe_load(render(values())["registry/ws1/demo.yaml"])
    assert app["spec"]["syncPolicy"] == demo["spec"]["syncPolicy"]
    assert app["metadata"]["namespace"] == demo["metadata"]["namespace"]
    assert package_mark(files["registry/ws1/shop.yaml"]) == "shop"


def test_a_kustomization_package_is_left_to_the_reconciler(tmp_path: Path) -> None:
    base = write(
        tmp_path / "kust",
        {"kustomization.yaml": "resources: [base]\n", "base/cm.yaml": "kind: ConfigMap\n"},
    )
    app = yaml.safe_load(
        render_packages([Package("kust", base)], values())["registry/ws1/kust.yaml"]
    )
    assert "directory" not in app["spec"]["source"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"README.md": "hi"}, "holds no manifests"),
        ({"a.yaml": "a: [\n"}, r"a.yaml:\d+ is not valid YAML"),
    ],
)
def test_bad_packages(files: dict[str, str], message: str, tmp_path: Path) -> None:
    package = write(tmp_path / "p", files)
    with pytest.raises(PermanentError, match=message):
        render_packages([Package("p", package)], values())


def test_clashes_with_the_template_or_the_repository(tmp_path: Path) -> None:
    demo = Package("demo", tmp_path / "demo")
    base = render(values())
    registry = {p: c for p, c in base.items() if p.startswith("registry/ws1/")}
    with pytest.raises(ConfigError, match=r"apps/demo/ from elsewhere"):
        check_clashes([demo], base, registry, "ws1")
    with pytest.raises(
        ConfigError,
        match=r"registry/ws1/vault.yaml already declares an Application 'vault'|registry/ws1/vault.yaml from elsewhere",
    ):
        check_clashes([Package("vault", tmp_path / "vault")], base, registry, "ws1")
    with pytest.raises(ConfigError, match="which the platform uses"):
        check_clashes([Package("root", tmp_path / "root")], base, registry, "ws1")
    # Its own earlier files are no clash: a re-run rewrites them.
    shop = write(tmp_path / "shop", {"a.yaml": "kind: ConfigMap\n"})
    ours = render_packages([Package("shop", shop)], values())
    check_clashes([Package("shop", shop)], {**base, **ours}, {**registry, **ours}, "ws1")


def test_hostile_trees_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write(tmp_path / "t", {"a.yaml": "kind: ConfigMap\n", ".git/config": "x"})
    assert [p.as_posix() for p, _ in tree.read_tree(root, "t")] == ["a.yaml"]  # .git skipped
    os.symlink("/etc/passwd", root / "passwd.yaml")
    with pytest.raises(PermanentError, match=r"passwd\.yaml is a symbolic link"):
        tree.read_tree(root, "the package t")
    (root / "passwd.yaml").unlink()
    os.symlink(tmp_path, root / "loop")
    with pytest.raises(PermanentError, match="loop is a symbolic link"):
        tree.read_tree(root, "the package t")
    (root / "loop").unlink()
    monkeypatch.setattr(tree, "MAX_FILES", 3)
    write(root, {f"f{i}.yaml": "kind: ConfigMap\n" for i in range(5)})
    with pytest.raises(PermanentError, match="larger than a GitOps repository should be"):
        tree.read_tree(root, "the package t")
