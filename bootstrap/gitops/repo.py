"""The platform's GitOps repository: its files, rendered from gitops-template/, and its URLs.

    values = platform_values(settings)                 every ${NAME} the template may use
    files = render(values, omit=omitted_components(settings))   {"registry/local/demo.yaml": b"...", ...}

The tree is gitops-template/ with its `${NAME}` placeholders filled (the directory
`registry/CLUSTER` renamed to the platform's name), plus `platform/<component>/` for
each in-house component, filled from stacks/<component>/manifests/: those manifests
have one source, the package, never a copy in the template. A platform that uses an
external git server (`git.url`) or Vault (`vault.address`) gets no `gitserver` / `vault`
Application and no platform/ directory for it.

A user's template (`platform up --template`) takes the place of gitops-template/'s
content; the platform's own part (platform/ and the Applications that point into it)
still comes from gitops-template/ unless the user's template has the same file. Files in
a Helm chart's templates/ are Go templates: only known placeholders are filled there,
and they are not parsed as YAML.

Every file is checked before anything is pushed: no `${` left, every YAML document
parses, every Application names a path that exists in the rendered tree. A failure names
the template file and line ("gitops-template/apps/demo/x.yaml:12 uses ${FOO}, which has
no value"). Rendering reads only the packaged template and manifests (no network, no
cluster). The URL helpers are not all pure: `laptop_base_url`/`laptop_repo_url`, given a
`kube`, may open a port-forward to the git server through the Kubernetes API
(bootstrap/forwards.py). Called by the `seed` and `gitserver` stages, `platform git ...`
and the unit tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import yaml

from bootstrap import __version__
from bootstrap.assets import asset_dir
from bootstrap.config import ConfigError, Settings
from bootstrap.forwards import forwarded_address, git_through_port_forward
from bootstrap.gitops.source import (
    GIT_NAMESPACE,
    GIT_SERVICE,
    GIT_SERVICE_PORT,
    IN_CLUSTER_BASE_URL,
    REPO,
)
from bootstrap.gitops.tree import read_tree
from bootstrap.images import COMPONENT_IMAGE, OPENBAO_IMAGE
from bootstrap.vault_access import in_cluster_address
from stacks.errors import PermanentError
from stacks.manifests import PLACEHOLDER, component_files, fill

if TYPE_CHECKING:
    from stacks.kube.client import KubeClient

TEMPLATE = "gitops-template"
CLUSTER_DIR = "CLUSTER"
# In-house components whose platform/<component>/ comes from stacks/<component>/manifests.
STACK_COMPONENTS = ("gitserver", "reconciler", "vault", "secrets", "certs", "dns")
APPLICATION_API = "gitops.platform.local/v1alpha1"
TEXT_SUFFIXES = (".yaml", ".yml", ".md", ".txt", ".json", "")


def laptop_base_url(settings: Settings, kube: Callable[[], KubeClient] | None = None) -> str:
    """The git server as this machine reaches it: `git.url`, else its Ingress git.<domain>,
    or, with a port-forward (`git_through_port_forward`) and a `kube` to open it with,
    the forward's local address, valid while this process runs."""
    if settings.git.url:
        return settings.git.url.rstrip("/")
    if kube is not None and git_through_port_forward(settings):
        address = forwarded_address(kube, GIT_NAMESPACE, GIT_SERVICE, GIT_SERVICE_PORT)
        return f"http://{address}"
    port = settings.k3d.http_port
    return f"http://git.{settings.domain}{'' if port == 80 else f':{port}'}"


def laptop_repo_url(settings: Settings, kube: Callable[[], KubeClient] | None = None) -> str:
    """The GitOps repository's URL on this machine (what `platform git url` prints)."""
    return f"{laptop_base_url(settings, kube)}/{REPO}.git"


def people_repo_url(settings: Settings) -> str:
    """How a person reaches the repository, for `platform status` and `platform git url`:
    the URL, or, through a port-forward, the command that opens one and the URL then."""
    if git_through_port_forward(settings):
        return (
            f"http://127.0.0.1:8080/{REPO}.git while `kubectl -n {GIT_NAMESPACE} "
            f"port-forward svc/{GIT_SERVICE} 8080:{GIT_SERVICE_PORT}` runs"
        )
    return laptop_repo_url(settings)


def cluster_repo_url(settings: Settings) -> str:
    """The URL the cluster pulls from: `git.url`'s repo, else the in-cluster Service."""
    base = settings.git.url.rstrip("/") if settings.git.url else IN_CLUSTER_BASE_URL
    return f"{base}/{REPO}.git"


def platform_values(settings: Settings) -> dict[str, str]:
    """Every placeholder value of the template and the components' manifests."""
    vault_image_tag = OPENBAO_IMAGE.rsplit(":", 1)[-1]
    return {
        "CLUSTER": settings.name,
        "DOMAIN": settings.domain,
        "GIT_REPO_URL": cluster_repo_url(settings),
        "COMPONENT_IMAGE": COMPONENT_IMAGE,
        "COMPONENT_VERSION": __version__,
        "PLATFORM_VERSION": __version__,
        "VAULT_IMAGE": OPENBAO_IMAGE,
        "VAULT_VERSION": vault_image_tag,
        "VAULT_URL": settings.vault.address.rstrip("/")
        if settings.vault.address
        else in_cluster_address(),
    }


def omitted_components(settings: Settings) -> frozenset[str]:
    """Components the platform does not deploy, because the settings name external ones."""
    omitted = set()
    if settings.git.url:
        omitted.add("gitserver")
    if settings.vault.address:
        omitted.add("vault")
    return frozenset(omitted)


def generated_dirs(omit: Iterable[str] = ()) -> list[str]:
    """Directories the renderer owns entirely (an upgrade removes stale files there)."""
    skipped = set(omit)
    return [f"platform/{c}" for c in STACK_COMPONENTS if c not in skipped]


def render(
    values: Mapping[str, str],
    omit: Iterable[str] = (),
    template: Path | None = None,
    label: str | None = None,
) -> dict[str, bytes]:
    """The repository's files: relative POSIX path -> content. Raises PermanentError.

    `template` is the user's own template (`platform up --template`), `label` how errors
    name it (its directory's name by default). It replaces gitops-template/'s content
    (README, apps, their Applications); the platform's own part, platform/ and the
    Applications in registry/CLUSTER/ whose path is under platform/, still comes from
    this release unless the template has a file at the same path, so a template holds
    only what it adds and keeps working with the next release."""
    for name, value in values.items():
        if "\n" in value or "\r" in value:
            raise PermanentError(
                f"the template value {name} spans lines",
                hint="template values are single-line (names, URLs, image references)",
            )
    skipped = set(omit)
    unknown = skipped - set(STACK_COMPONENTS)
    if unknown:
        raise PermanentError(f"cannot leave out unknown component(s): {', '.join(sorted(unknown))}")
    cluster = values.get("CLUSTER", "")
    if not cluster:
        raise PermanentError("the template value CLUSTER (the platform's name) is empty")

    files = _render_template(asset_dir(TEMPLATE), TEMPLATE, values, skipped, cluster)
    if template is not None:
        name = label or template.name
        own = _render_template(template, name, values, skipped, cluster)
        if not any(path.startswith(f"registry/{cluster}/") for path in own):
            raise ConfigError(
                f"{name} is not a platform template: it has no registry/{CLUSTER_DIR}/ "
                "directory with files in it",
                hint=f"a template holds registry/{CLUSTER_DIR}/ (one Application per app; "
                f"{CLUSTER_DIR} becomes the platform's name) and the apps' manifests, e.g. "
                "apps/<name>/; see gitops-template/ in the platform's source",
            )
        files = {**platform_part(files, cluster), **own}

    for component in STACK_COMPONENTS:
        if component in skipped:
            continue
        for name, text in component_files(component):
            source = f"stacks/{component}/manifests/{name}"
            files[f"platform/{component}/{name}"] = _render_text(text, ".yaml", values, source)

    _check_applications(files, cluster, values.get("GIT_REPO_URL", ""))
    return files


def platform_part(files: Mapping[str, bytes], cluster: str) -> dict[str, bytes]:
    """The files of a rendered gitops-template/ that deliver the platform itself:
    platform/ and the registry files whose every Application has a path under platform/."""
    part = {path: content for path, content in files.items() if path.startswith("platform/")}
    registry = f"registry/{cluster}/"
    for path, content in files.items():
        if not path.startswith(registry) or not path.endswith((".yaml", ".yml")):
            continue
        apps = [d for d in documents(files, path) if isinstance(d, dict)]
        paths = [str(((d.get("spec") or {}).get("source") or {}).get("path") or "") for d in apps]
        if paths and all(p.startswith("platform/") for p in paths):
            part[path] = content
    return part


def _render_template(
    root: Path, label: str, values: Mapping[str, str], skipped: set[str], cluster: str
) -> dict[str, bytes]:
    """One template directory rendered: registry/CLUSTER renamed, placeholders filled."""
    files: dict[str, bytes] = {}
    entries = read_tree(root, f"the template {label}")
    charts = chart_dirs(path for path, _ in entries)
    for relative, content in entries:
        source = f"{label}/{relative}"
        if (
            len(relative.parts) > 1
            and relative.parts[0] == "platform"
            and relative.parts[1] in STACK_COMPONENTS
        ):
            raise PermanentError(
                f"{source} is in platform/{relative.parts[1]}/, which is generated from "
                f"stacks/{relative.parts[1]}/manifests/",
                hint="change the component's manifests in stacks/, not a copy in the template",
            )
        if relative.parts[:2] == ("registry", CLUSTER_DIR):
            if len(relative.parts) == 3 and relative.stem in skipped:
                continue
            relative = PurePosixPath("registry", cluster, *relative.parts[2:])
        if in_chart_templates(relative, charts):
            files[str(relative)] = fill_known(content, values)
        else:
            files[str(relative)] = _render_file(content, relative.suffix, values, source)
    return files


def chart_dirs(paths: Iterable[PurePosixPath]) -> set[PurePosixPath]:
    """Directories that are Helm charts (hold a Chart.yaml)."""
    return {path.parent for path in paths if path.name == "Chart.yaml"}


def in_chart_templates(path: PurePosixPath, charts: set[PurePosixPath]) -> bool:
    """A file under a chart's templates/ or charts/: Go templates, not YAML, and `${`
    there may be Helm's or a shell's: only the platform's own placeholders are filled."""
    for chart in charts:
        depth = len(chart.parts)
        inside = len(path.parts) > depth + 1 and path.parts[:depth] == chart.parts
        if inside and path.parts[depth] in ("templates", "charts"):
            return True
    return False


def fill_known(content: bytes, values: Mapping[str, str]) -> bytes:
    """`${NAME}` replaced where NAME is one of `values`; anything else left as it is."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return content
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text).encode("utf-8")


def _render_file(content: bytes, suffix: str, values: Mapping[str, str], source: str) -> bytes:
    if suffix not in TEXT_SUFFIXES:
        return content
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return content  # a binary file: copied as it is
    return _render_text(text, suffix, values, source)


def _render_text(text: str, suffix: str, values: Mapping[str, str], source: str) -> bytes:
    filled = fill(text, values, source)
    left = filled.find("${")
    if left >= 0:
        line = filled.count("\n", 0, left) + 1
        snippet = filled[left : left + 24].split("\n", 1)[0]
        raise PermanentError(
            f"{source}:{line} has {snippet!r}, which is not a placeholder "
            f"(placeholders are ${{NAME}} in capitals, e.g. ${{DOMAIN}})",
            hint="fix the placeholder's spelling (known: " + ", ".join(sorted(values)) + ")",
        )
    if suffix in (".yaml", ".yml"):
        _parse_yaml(filled, source)
    return filled.encode("utf-8")


def _parse_yaml(text: str, source: str) -> list[Any]:
    try:
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(error, "problem", None) or str(error).split("\n", 1)[0]
        raise PermanentError(
            f"{where} is not valid YAML: {problem}",
            hint="fix the YAML at that line (indentation, quoting, a missing ':')",
        ) from None


def documents(files: Mapping[str, bytes], path: str) -> list[Any]:
    """The YAML documents of one rendered file."""
    return _parse_yaml(files[path].decode("utf-8"), path)


def applications(files: Mapping[str, bytes]) -> list[tuple[str, dict[str, Any]]]:
    """(file, Application) for every Application in the rendered tree."""
    found: list[tuple[str, dict[str, Any]]] = []
    charts = chart_dirs(PurePosixPath(p) for p in files)
    for path in sorted(files):
        if not path.endswith((".yaml", ".yml")) or in_chart_templates(PurePosixPath(path), charts):
            continue
        for doc in documents(files, path):
            if isinstance(doc, dict) and doc.get("kind") == "Application":
                found.append((path, doc))
    return found


def _check_applications(files: Mapping[str, bytes], cluster: str, repo_url: str = "") -> None:
    directories = {str(PurePosixPath(p).parent) for p in files}
    for parent in list(directories):
        directories.update(str(p) for p in PurePosixPath(parent).parents)
    for path, app in applications(files):
        name = (app.get("metadata") or {}).get("name", "?")
        source = (app.get("spec") or {}).get("source") or {}
        wanted = str(source.get("path") or ".").strip("/") or "."
        elsewhere = source.get("chart") or (
            repo_url and source.get("repoURL") not in (None, "", repo_url)
        )
        if app.get("apiVersion") != APPLICATION_API:
            raise PermanentError(
                f"{path}: Application {name} has apiVersion {app.get('apiVersion')!r}",
                hint=f"use apiVersion {APPLICATION_API}",
            )
        if not elsewhere and wanted not in directories:  # a path in this repository
            raise PermanentError(
                f"{path}: Application {name} names path {wanted!r}, which is not in the "
                "rendered repository",
                hint="fix spec.source.path, or add the directory to the template",
            )
    if f"registry/{cluster}" not in directories:
        raise PermanentError(
            f"the rendered repository has no registry/{cluster}/ (the root Application's path)",
            hint=f"keep {TEMPLATE}/registry/{CLUSTER_DIR}/ in the template",
        )


def placeholders(text: str) -> set[str]:
    """The placeholder names `text` uses (for tests and docs)."""
    return {m.group(1) for m in PLACEHOLDER.finditer(text)}
