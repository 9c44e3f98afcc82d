"""The pure parts of Helm and Kustomize sources (issue 18): spec parsing, Argo CD's
detection, repository Secrets, helm's output split, kustomize's edits and reference
walk, and the bounded tool run (with real processes: sleep, a flood of output)."""

from __future__ import annotations

import base64
import io
import os
import sys
import tarfile
from pathlib import Path

import pytest

from stacks.errors import PermanentError
from stacks.reconciler.api import AppSpec
from stacks.reconciler.render import RenderError
from stacks.reconciler.sources import charts, helm, kustomize, renderer
from stacks.reconciler.sources.charts import ChartCache, open_version
from stacks.reconciler.sources.renderer import (
    CHART,
    DIRECTORY,
    HELM,
    KUSTOMIZE,
    RenderSettings,
    kind_of,
)
from stacks.reconciler.sources.repos import SECRET_TYPE_LABEL, RepoAccess, access_for
from stacks.reconciler.sources.run import (
    ToolFailed,
    ToolOutputTooLarge,
    ToolTimeout,
    printable,
    run_tool,
    tool_env,
)
from stacks.reconciler.sources.spec import (
    HelmOptions,
    KustomizeOptions,
    parse_helm,
    parse_kustomize,
)


def _app(source: dict[str, object]) -> AppSpec:
    return AppSpec.parse(
        {
            "metadata": {"name": "a", "namespace": "ns"},
            "spec": {"source": {"repoURL": "https://git.example/r.git", **source}},
        }
    )


def test_helm_and_kustomize_fields_parse_into_values() -> None:
    spec = _app(
        {
            "chart": "demo",
            "helm": {
                "releaseName": "rel",
                "valueFiles": ["values-prod.yaml"],
                "values": "a: 1\n",
                "valuesObject": {"b": {"c": 2}},
                "parameters": [{"name": "x", "value": "1", "forceString": True}],
                "skipCrds": True,
            },
        }
    )
    options = spec.source.helm
    assert options is not None and spec.source.chart == "demo"
    assert options.release_name == "rel" and options.value_files == ("values-prod.yaml",)
    assert options.values_object == '{"b": {"c": 2}}' and options.skip_crds
    assert options.parameters[0].force_string
    kust = parse_kustomize(
        {
            "namePrefix": "p-",
            "images": ["nginx=nginx:2"],
            "commonLabels": {"team": "a"},
            "patches": [{"patch": "x", "target": {"kind": "ConfigMap"}}],
        }
    )
    assert kust is not None and kust.patches[0].target is not None
    assert kust.patches[0].target.kind == "ConfigMap"
    assert hash(spec)  # still a value


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"valueFiles": "values.yaml"}, "helm.valueFiles"),
        ({"parameters": [{"value": "1"}]}, "helm.parameters[0]"),
        ({"valuesObject": ["a"]}, "helm.valuesObject"),
        ({"valueFiles": ["v.yaml"] * 101}, "helm.valueFiles"),
    ],
)
def test_bad_helm_fields_are_named(raw: dict[str, object], field: str) -> None:
    with pytest.raises(PermanentError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_helm(raw)


def test_bad_kustomize_fields_are_named() -> None:
    with pytest.raises(PermanentError, match=r"kustomize\.patches"):
        parse_kustomize({"patches": [{"patch": "a", "path": "b"}]})
    with pytest.raises(PermanentError, match=r"kustomize\.images"):
        parse_kustomize({"images": ["--help"]})
    with pytest.raises(PermanentError, match="commonLabels"):
        parse_kustomize({"commonLabels": {"bad key!": "v"}})
    with pytest.raises(PermanentError, match="Application 'ns/a'"):
        _app({"chart": "../etc"})


def test_detection_follows_argo_cd() -> None:
    assert kind_of("demo", None, None, []) == CHART
    assert kind_of("", None, None, ["Chart.yaml", "kustomization.yaml"]) == KUSTOMIZE
    assert kind_of("", None, None, ["Kustomization"]) == KUSTOMIZE
    assert kind_of("", None, None, ["Chart.yaml", "values.yaml"]) == HELM
    assert kind_of("", None, None, ["cm.yaml"]) == DIRECTORY
    assert kind_of("", HelmOptions(), None, ["kustomization.yaml"]) == HELM
    assert kind_of("", None, KustomizeOptions(), []) == KUSTOMIZE
    with pytest.raises(PermanentError, match="both helm and kustomize"):
        kind_of("", HelmOptions(), KustomizeOptions(), [])


def _secret(kind: str, url: str, user: str, password: str, **extra: str) -> dict[str, object]:
    data = {"url": url, "username": user, "password": password, **extra}
    return {
        "metadata": {"labels": {SECRET_TYPE_LABEL: kind}},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def test_repository_secrets_exact_match_beats_the_longest_prefix() -> None:
    secrets = [
        _secret("repo-creds", "https://charts.example", "any", "p1"),
        _secret("repo-creds", "https://charts.example/team", "team", "p2"),
        _secret("repository", "https://charts.example/team/stable/", "exact", "p3"),
    ]
    assert access_for("https://charts.example/team/stable", secrets).username == "exact"
    assert access_for("https://charts.example/team/beta", secrets).username == "team"
    assert access_for("https://charts.example/other", secrets).username == "any"
    assert access_for("https://elsewhere.example", secrets) == RepoAccess()
    found = access_for("https://charts.example/team/stable", secrets)
    assert "p3" not in repr(found)
    oci = access_for(
        "oci://127.0.0.1:5000/charts",
        [_secret("repository", "oci://127.0.0.1:5000/charts", "", "", insecureOCIForceHttp="true")],
    )
    assert oci.plain_http and not oci.has_credentials


def test_helm_output_is_split_by_template() -> None:
    output = (
        b"---\n# Source: demo/templates/a.yaml\nkind: A\n"
        b"---\n# Source: demo/templates/b.yaml\nkind: B\n"
        b"---\n# Source: demo/templates/a.yaml\nkind: A2\n"
    )
    files = helm.split_output(output, "charts/demo")
    assert [f.path for f in files] == [
        "charts/demo/templates/a.yaml",
        "charts/demo/templates/b.yaml",
    ]
    assert b"A2" in files[0].content
    assert helm.split_output(b"kind: X\n", "p")[0].path == "p"


def test_helm_value_files_stay_in_the_repository(tmp_path: Path) -> None:
    chart = tmp_path / "repo" / "charts" / "demo"
    chart.mkdir(parents=True)
    (tmp_path / "repo" / "envs").mkdir()
    (tmp_path / "repo" / "envs" / "prod.yaml").write_text("a: 1\n")
    (tmp_path / "secret.yaml").write_text("stolen: true\n")
    root = tmp_path / "repo"

    def argv(*files: str, ignore: bool = False) -> list[str]:
        options = HelmOptions(value_files=files, ignore_missing_value_files=ignore, skip_crds=True)
        return helm.template_argv(
            "helm", chart, root, options, release="r", namespace="ns", scratch=tmp_path, shown="x"
        )

    assert str(root / "envs" / "prod.yaml") in argv("../../envs/prod.yaml")
    with pytest.raises(RenderError, match="outside the repository"):
        argv("../../../secret.yaml")
    with pytest.raises(RenderError, match="URL"):
        argv("https://example.com/values.yaml")
    with pytest.raises(RenderError, match="does not exist"):
        argv("missing.yaml")
    assert "--values" not in argv("missing.yaml", ignore=True)


def test_kustomize_edits_in_argo_cd_order() -> None:
    options = parse_kustomize(
        {
            "namespace": "team",
            "commonAnnotations": {"a": "1"},
            "commonLabels": {"l": "2"},
            "forceCommonLabels": True,
            "images": ["nginx:2"],
            "nameSuffix": "-s",
            "namePrefix": "p-",
        }
    )
    assert options is not None
    assert kustomize.edit_commands(options) == [
        ["edit", "set", "nameprefix", "--", "p-"],
        ["edit", "set", "namesuffix", "--", "-s"],
        ["edit", "set", "image", "nginx:2"],
        ["edit", "add", "label", "--force", "l:2"],
        ["edit", "add", "annotation", "a:1"],
        ["edit", "set", "namespace", "--", "team"],
    ]


def test_kustomize_references_remote_absolute_and_outside(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "base").mkdir(parents=True)
    (root / "base" / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
    overlay = root / "overlay"
    overlay.mkdir()

    def check(resources: str, allow: bool = False) -> None:
        (overlay / "kustomization.yaml").write_text(f"resources: {resources}\n")
        kustomize.check_references(overlay, root, allow, "overlay")

    check("[../base]")
    with pytest.raises(RenderError, match=kustomize.REMOTE_SETTING):
        check("['https://github.com/org/repo//base?ref=v1']")
    with pytest.raises(RenderError, match="remote base"):
        check("[github.com/org/repo/base]")
    check("['https://github.com/org/repo//base?ref=v1']", allow=True)
    with pytest.raises(RenderError, match="absolute path"):
        check("[/var/cache/platform-reconciler]")
    with pytest.raises(RenderError, match="leaves the repository"):
        check("[../../elsewhere]")
    # Through a local base too.
    (root / "base" / "kustomization.yaml").write_text("resources: ['git@github.com:o/r.git']\n")
    with pytest.raises(RenderError, match=r"base/kustomization\.yaml"):
        check("[../base]")


def test_settings_from_the_environment() -> None:
    settings = RenderSettings.from_env(
        {
            "PLATFORM_RECONCILER_HELM": "/opt/helm",
            "PLATFORM_RECONCILER_RENDER_TIMEOUT": "7",
            kustomize.REMOTE_SETTING: "true",
        }
    )
    assert settings.helm == "/opt/helm" and settings.kustomize == "kustomize"
    assert settings.timeout == 7.0 and settings.allow_remote_bases
    assert not RenderSettings.from_env({}).allow_remote_bases
    with pytest.raises(PermanentError):
        RenderSettings.from_env({"PLATFORM_RECONCILER_RENDER_TIMEOUT": "soon"})


def test_exact_chart_versions_need_no_network(tmp_path: Path) -> None:
    cache = ChartCache(tmp_path)

    def no_access() -> RepoAccess:
        raise AssertionError("an exact version must not read Secrets or the index")

    assert cache.resolve("http://127.0.0.1:9", "demo", "1.2.3", no_access) == "1.2.3"
    assert open_version("*") and open_version("") and not open_version("1.0.0")
    with pytest.raises(PermanentError, match="exact version"):
        cache.resolve("oci://127.0.0.1:9/charts", "demo", "*", no_access)


def test_tool_run_is_bounded_in_time_and_output(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin"}
    with pytest.raises(ToolTimeout, match="did not finish within 1s"):
        run_tool(["sleep", "30"], cwd=tmp_path, env=env, timeout=1, max_output=1024, what="t")
    lingering = ["sh", "-c", "exec 1>&- 2>&-; sleep 30"]  # closes its pipes, runs on
    with pytest.raises(ToolTimeout):
        run_tool(lingering, cwd=tmp_path, env=env, timeout=1, max_output=1024, what="t")
    flood = [sys.executable, "-c", "import sys\nwhile True: sys.stdout.write('x' * 65536)"]
    with pytest.raises(ToolOutputTooLarge, match="more than 1 MiB"):
        run_tool(flood, cwd=tmp_path, env=env, timeout=30, max_output=1024 * 1024, what="t")
    noisy = [
        sys.executable,
        "-c",
        "import sys; sys.stderr.write('bad \\x1b[31mthing\\n'); sys.exit(3)",
    ]
    with pytest.raises(ToolFailed) as failed:
        run_tool(noisy, cwd=tmp_path, env=env, timeout=30, max_output=1024, what="helm template x")
    assert "helm template x failed: bad \\x1b[31mthing" in str(failed.value)
    with pytest.raises(ToolFailed, match="cannot run"):
        run_tool(["/nonexistent/helm"], cwd=tmp_path, env=env, timeout=5, max_output=10, what="t")
    assert (
        run_tool(["echo", "hi"], cwd=tmp_path, env=env, timeout=5, max_output=10, what="t").stdout
        == b"hi\n"
    )
    assert printable("a\u0007b" + "c" * 1000, 20).endswith("...")


def test_tools_see_none_of_the_reconcilers_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLATFORM_WEBHOOK_SECRET", "hook-5ecret")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    env = tool_env(tmp_path)
    assert "hook-5ecret" not in env.values()
    assert env["HTTPS_PROXY"] == "http://proxy.example:3128" and env["HOME"] == str(tmp_path)


def test_the_chart_cache_is_bounded_oldest_used_first_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(charts, "CACHE_BYTES", 2500)
    cache = ChartCache(tmp_path)
    paths = [cache.path("http://r.example", "c", f"1.0.{i}") for i in range(3)]
    for age, path in enumerate(paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 1000)
        os.utime(path, (1000 + age, 1000 + age))
    cache._evict()
    assert [p.exists() for p in paths] == [False, True, True]


def test_a_chart_archive_is_unpacked_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "c.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        for i in range(5):
            data = b"a: 1\n"
            info = tarfile.TarInfo(f"c/templates/{i}.yaml")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("c/escape")
        link.type = tarfile.SYMTYPE
        link.linkname = "../../../etc/passwd"
        tar.addfile(link)
    monkeypatch.setattr(renderer, "UNPACKED_FILES", 3)
    with pytest.raises(RenderError, match="over the limit of 3 files"):
        renderer._unpack(archive, tmp_path / "out", "c-1.0.0")
    monkeypatch.setattr(renderer, "UNPACKED_FILES", 100)
    with pytest.raises(RenderError, match="cannot be read"):
        renderer._unpack(archive, tmp_path / "out2", "c-1.0.0")  # the link leaves it
