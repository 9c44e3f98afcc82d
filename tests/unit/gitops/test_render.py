"""The GitOps repository renderer (bootstrap.gitops.repo): the shipped template renders
into a consistent tree for every kind of platform, and a bad template fails with the
file and line."""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

import pytest
import yaml

from bootstrap.assets import asset_dir
from bootstrap.config import load_settings
from bootstrap.gitops.repo import (
    STACK_COMPONENTS,
    applications,
    documents,
    omitted_components,
    platform_values,
    render,
)
from stacks.errors import PermanentError
from stacks.manifests import component_files, fill

ALL_APPS = {
    "gitserver",
    "reconciler",
    "vault",
    "secrets",
    "certs",
    "dns",
    "secrets-config",
    "certs-config",
    "demo",
}


def settings(**env: str):  # type: ignore[no-untyped-def]
    base = {"PLATFORM_NAME": "ws1", "PLATFORM_DOMAIN": "example.test"}
    return load_settings(environ={**base, **env})


def rendered(**env: str) -> dict[str, bytes]:
    s = settings(**env)
    return render(platform_values(s), omitted_components(s))


def test_every_document_parses_and_no_placeholder_is_left() -> None:
    files = rendered()
    for path, content in files.items():
        text = content.decode()
        assert "${" not in text, path
        if path.endswith(".yaml"):
            docs = documents(files, path)
            assert docs, path
            assert all(isinstance(d, dict) and d.get("kind") for d in docs), path


def test_the_registry_has_one_application_per_component_and_each_path_exists() -> None:
    files = rendered()
    apps = applications(files)
    names = {a["metadata"]["name"] for _, a in apps}
    assert names == ALL_APPS
    directories = {str(PurePosixPath(p).parent) for p in files}
    for path, app in apps:
        assert path == f"registry/ws1/{app['metadata']['name']}.yaml"
        assert app["apiVersion"] == "gitops.platform.local/v1alpha1"
        assert app["metadata"]["namespace"] == "platform-system"
        source = app["spec"]["source"]
        assert source["repoURL"] == "http://platform-gitserver.platform-git.svc/gitops.git"
        assert source["path"] in directories, source["path"]
        assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}


def test_config_apps_come_after_their_controllers_and_the_demo_last() -> None:
    apps = {a["metadata"]["name"]: a for _, a in applications(rendered())}

    def wave(name: str) -> int:
        return int(apps[name]["metadata"]["annotations"]["gitops.platform.local/sync-wave"])

    def deps(name: str) -> set[str]:
        return {d["name"] for d in apps[name]["spec"].get("dependsOn") or []}

    assert wave("secrets") < wave("secrets-config") and "secrets" in deps("secrets-config")
    assert wave("certs") < wave("certs-config") and "certs" in deps("certs-config")
    assert all(wave("demo") > wave(n) for n in ALL_APPS - {"demo"})
    assert deps("demo") == {"secrets-config", "certs-config"}
    assert "CreateNamespace=true" in apps["demo"]["spec"]["syncPolicy"]["syncOptions"]


def test_platform_dirs_come_from_the_components_manifests_not_from_the_template() -> None:
    files = rendered()
    template = asset_dir("gitops-template")
    for component in STACK_COMPONENTS:
        assert not (template / "platform" / component).exists()
        names = [name for name, _ in component_files(component)]
        assert names
        for name, text in component_files(component):
            values = platform_values(settings())
            assert files[f"platform/{component}/{name}"].decode() == fill(text, values, name)


def test_the_demo_app() -> None:
    files = rendered()
    objects = [d for p in files if p.startswith("apps/demo/") for d in documents(files, p)]
    by_kind = {o["kind"]: o for o in objects}
    assert {o["metadata"].get("namespace", "demo") for o in objects} == {"demo"}
    ingress = by_kind["Ingress"]
    assert ingress["spec"]["rules"][0]["host"] == "demo.example.test"
    assert ingress["spec"]["tls"] == [{"hosts": ["demo.example.test"], "secretName": "demo-tls"}]
    assert (
        ingress["metadata"]["annotations"]["certs.platform.local/cluster-issuer"] == "platform-ca"
    )
    external = by_kind["ExternalSecret"]
    assert external["apiVersion"] == "secrets.platform.local/v1"
    assert external["spec"]["secretStoreRef"] == {"name": "vault", "kind": "ClusterSecretStore"}
    assert external["spec"]["target"]["name"] == "demo-credentials"
    assert {d["remoteRef"]["key"] for d in external["spec"]["data"]} == {"demo/app"}
    # the keys terraform/vault seeds at secret/demo/app
    assert {d["remoteRef"]["property"] for d in external["spec"]["data"]} == {
        "username",
        "password",
    }
    deployment = by_kind["Deployment"]
    assert any(p.startswith("apps/demo/") and "deployment" in p for p in files)
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    assert {"name": "credentials", "secret": {"secretName": "demo-credentials"}} in volumes
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in env} == {"demo-credentials"}
    assert deployment["metadata"]["labels"]["app.kubernetes.io/name"] == "demo"


def test_the_platform_store_and_issuer() -> None:
    from stacks.secrets.install import platform_cluster_store

    files = rendered()
    (store,) = documents(files, "platform/secrets-config/cluster-secret-store.yaml")
    assert store == platform_cluster_store(server="http://openbao.platform-vault.svc:8200")
    (issuer,) = documents(files, "platform/certs-config/cluster-issuer.yaml")
    assert issuer["kind"] == "ClusterIssuer" and issuer["metadata"]["name"] == "platform-ca"
    assert issuer["spec"] == {"ca": {"secretName": "platform-ca"}}


def test_external_git_and_vault_leave_out_their_applications() -> None:
    files = rendered(
        PLATFORM_GIT_URL="http://git.team.example:3000/",
        PLATFORM_VAULT_ADDRESS="https://vault.team.example:8200",
    )
    names = {a["metadata"]["name"] for _, a in applications(files)}
    assert names == ALL_APPS - {"gitserver", "vault"}
    assert not any(p.startswith(("platform/gitserver/", "platform/vault/")) for p in files)
    app = yaml.safe_load(files["registry/ws1/demo.yaml"])
    assert app["spec"]["source"]["repoURL"] == "http://git.team.example:3000/gitops.git"
    (store,) = documents(files, "platform/secrets-config/cluster-secret-store.yaml")
    assert store["spec"]["provider"]["vault"]["server"] == "https://vault.team.example:8200"


def test_rendering_is_deterministic() -> None:
    assert rendered() == rendered()


@pytest.fixture
def template(tmp_path: Path) -> Path:
    copy = tmp_path / "gitops-template"
    shutil.copytree(asset_dir("gitops-template"), copy)
    return copy


def test_an_unknown_placeholder_names_the_file_and_line(template: Path) -> None:
    path = template / "apps/demo/40-service.yaml"
    lines = path.read_text().splitlines()
    lines.insert(3, "  annotations: {x: ${FOO}}")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(PermanentError) as caught:
        render(platform_values(settings()), template=template)
    assert "gitops-template/apps/demo/40-service.yaml:4 uses the placeholder ${FOO}" in str(
        caught.value
    )


def test_broken_yaml_names_the_file_and_line(template: Path) -> None:
    path = template / "apps/demo/40-service.yaml"
    text = path.read_text().replace("  name: demo\n", "  name: demo\n   bad: [\n", 1)
    path.write_text(text)
    line = text.splitlines().index("   bad: [") + 1
    with pytest.raises(PermanentError) as caught:
        render(platform_values(settings()), template=template)
    message = str(caught.value)
    assert message.startswith("gitops-template/apps/demo/40-service.yaml:")
    assert "is not valid YAML" in message
    reported = int(message.split(":", 2)[1].split(" ")[0])
    assert abs(reported - line) <= 1


def test_a_lowercase_placeholder_is_not_left_behind(template: Path) -> None:
    path = template / "README.md"
    path.write_text(path.read_text() + "\nsee ${domain}\n")
    with pytest.raises(PermanentError, match=r"README.md:\d+ has '\$\{domain\}'"):
        render(platform_values(settings()), template=template)


def test_an_application_with_a_missing_path_fails(template: Path) -> None:
    path = template / "registry/CLUSTER/demo.yaml"
    path.write_text(path.read_text().replace("path: apps/demo", "path: apps/nope"))
    with pytest.raises(PermanentError, match="names path 'apps/nope'"):
        render(platform_values(settings()), template=template)


def test_a_copy_of_component_manifests_in_the_template_is_refused(template: Path) -> None:
    (template / "platform/dns").mkdir(parents=True)
    (template / "platform/dns/x.yaml").write_text("kind: ConfigMap\n")
    with pytest.raises(PermanentError, match="generated from stacks/dns/manifests"):
        render(platform_values(settings()), template=template)


def test_the_dns_stub_serves_the_platforms_domain() -> None:
    # The stub in the cluster publishes names under the platform's domain, not a default.
    files = rendered()
    settings_map = next(
        d for d in documents(files, "platform/dns/25-settings.yaml") if d["kind"] == "ConfigMap"
    )
    assert settings_map["data"]["PLATFORM_DNS_DOMAIN"] == "example.test"
