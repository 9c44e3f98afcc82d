"""`platform up --package DIR`: a directory of the user's as an app of the platform.

    packages = packages_of(settings)                    [Package("shop", Path(...)), ...]
    files = render_packages(packages, values)           {"apps/shop/deploy.yaml": b"...",
                                                          "registry/<cluster>/shop.yaml": b"..."}
    check_clashes(packages, existing_paths, registry_files, cluster)

Each package becomes apps/<name>/ (its files, the platform's `${NAME}` placeholders
filled; any other `${...}` is left alone, since a package is an ordinary directory of
manifests that may hold shell or Helm text) plus one Application in registry/<cluster>/,
shaped like the demo's in gitops-template/ (project `platform`, as the demo: whoever
runs `platform up` is the platform's admin), marked with the annotation
`gitops.platform.local/package`. The mark is how a later run knows the files are the
package's own to rewrite (idpbuilder re-applies its packages on every run, and so does
`platform up`): apps/<name>/ or an Application <name> that came from anywhere else is a
clash, an error, never overwritten. Whatever the reconciler renders (plain YAML, a
kustomization, a Helm chart) works as a package, as it would in the template.

Called by the `seed` stage; pure (reads the package directories, no git, no network).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from bootstrap.config import ConfigError, Settings, package_name
from bootstrap.gitops.repo import (
    APPLICATION_API,
    chart_dirs,
    fill_known,
    in_chart_templates,
)
from bootstrap.gitops.tree import read_tree
from stacks.errors import PermanentError

PACKAGE_ANNOTATION = "gitops.platform.local/package"
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
RENDERED_ROOTS = ("kustomization.yaml", "kustomization.yml", "Kustomization", "Chart.yaml")
# Names the platform itself uses for Applications, whatever the template holds.
RESERVED = frozenset({"root"})

APPLICATION = """\
# The package {name}: `platform up --package .../{name}` wrote this file and apps/{name}/
# from that directory, and rewrites both on every run (one commit when they changed):
# change the directory and run `platform up`, or drop the annotation below to make
# them yours to edit here. Part of the app-of-apps root, like every file here.
apiVersion: {api}
kind: Application
metadata:
  name: {name}
  namespace: platform-system
  labels: {{app.kubernetes.io/part-of: platform}}
  annotations:
    gitops.platform.local/sync-wave: "3"
    {annotation}: {name}
spec:
  project: platform
  source:
    repoURL: {repo_url}
    path: apps/{name}
    targetRevision: HEAD{directory}
  destination:
    namespace: {name}
  syncPolicy:
    automated: {{prune: true, selfHeal: true}}
    syncOptions: [CreateNamespace=true]
  interval: 3m
"""


@dataclass(frozen=True)
class Package:
    name: str
    path: Path

    @property
    def app_dir(self) -> str:
        return f"apps/{self.name}"

    def application_file(self, cluster: str) -> str:
        return f"registry/{cluster}/{self.name}.yaml"


def packages_of(settings: Settings) -> list[Package]:
    """The packages the settings name (their names already checked by bootstrap.config)."""
    return [Package(package_name(path), Path(path)) for path in settings.packages]


def owned_dirs(packages: Iterable[Package]) -> list[str]:
    """Directories a run rewrites entirely: a file deleted from a package goes too."""
    return [p.app_dir for p in packages]


def render_packages(packages: Iterable[Package], values: Mapping[str, str]) -> dict[str, bytes]:
    """apps/<name>/... and registry/<cluster>/<name>.yaml for every package."""
    cluster = values["CLUSTER"]
    files: dict[str, bytes] = {}
    for package in packages:
        label = f"the package {package.path}"
        entries = read_tree(package.path, label)
        if not any(path.suffix in MANIFEST_SUFFIXES for path, _ in entries):
            raise ConfigError(
                f"{label} holds no manifests (no .yaml, .yml or .json file)",
                hint="give --package a directory of Kubernetes manifests, a kustomization "
                "or a Helm chart",
            )
        charts = chart_dirs(path for path, _ in entries)
        for relative, content in entries:
            filled = fill_known(content, values)
            if relative.suffix in (".yaml", ".yml") and not in_chart_templates(relative, charts):
                _check_yaml(filled, f"{package.path}/{relative}")
            files[f"{package.app_dir}/{relative}"] = filled
        files[package.application_file(cluster)] = application(
            package.name, values["GIT_REPO_URL"], recurse=_needs_recurse(entries)
        ).encode()
    return files


def application(name: str, repo_url: str, recurse: bool = False) -> str:
    """The Application of one package (the demo's shape, without its dependencies)."""
    return APPLICATION.format(
        name=name,
        api=APPLICATION_API,
        annotation=PACKAGE_ANNOTATION,
        repo_url=repo_url,
        directory="\n    directory: {recurse: true}" if recurse else "",
    )


def _needs_recurse(entries: list[tuple[PurePosixPath, bytes]]) -> bool:
    """Plain manifests in subdirectories are applied too (a kustomization or a chart at
    the top renders its own tree, so it is left to the reconciler's detection)."""
    top = {path.name for path, _ in entries if len(path.parts) == 1}
    if top & set(RENDERED_ROOTS):
        return False
    return any(len(path.parts) > 1 and path.suffix in MANIFEST_SUFFIXES for path, _ in entries)


def _check_yaml(content: bytes, source: str) -> None:
    try:
        list(yaml.safe_load_all(content.decode("utf-8")))
    except UnicodeDecodeError:
        raise PermanentError(f"{source} is not UTF-8 text") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(error, "problem", None) or str(error).split("\n", 1)[0]
        raise ConfigError(
            f"{where} is not valid YAML: {problem}",
            hint="fix the file in the package directory, then run `platform up` again",
        ) from None


def package_mark(content: bytes) -> str:
    """The package a registry file was written for ('' when it is not a package's)."""
    try:
        docs = list(yaml.safe_load_all(content.decode("utf-8")))
    except (UnicodeDecodeError, yaml.YAMLError):
        return ""
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "Application":
            annotations = (doc.get("metadata") or {}).get("annotations") or {}
            return str(annotations.get(PACKAGE_ANNOTATION) or "")
    return ""


def application_names(registry_files: Mapping[str, bytes]) -> dict[str, str]:
    """Application name -> the registry file that declares it (unparsable files skipped:
    the reconciler reports those)."""
    names: dict[str, str] = {}
    for path, content in sorted(registry_files.items()):
        try:
            docs: list[Any] = list(yaml.safe_load_all(content.decode("utf-8")))
        except (UnicodeDecodeError, yaml.YAMLError):
            continue
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") == "Application":
                names.setdefault(str((doc.get("metadata") or {}).get("name")), path)
    return names


def check_clashes(
    packages: Iterable[Package],
    existing_paths: Iterable[str],
    registry_files: Mapping[str, bytes],
    cluster: str,
) -> None:
    """A package may only take apps/<name>/, registry/<cluster>/<name>.yaml and the
    Application <name> when nothing else has them: the tree it is added to (the rendered
    template, or the repository as people left it) is given as `existing_paths` and the
    contents of its registry/<cluster>/ files."""
    paths = set(existing_paths)
    names = application_names(registry_files)
    for package in packages:
        own_file = package.application_file(cluster)
        ours = own_file in registry_files and package_mark(registry_files[own_file]) == package.name
        what = f"the package {package.path} (apps/{package.name}/)"
        if package.name in RESERVED:
            raise ConfigError(
                f"{what} would be the Application {package.name!r}, which the platform uses",
                hint="rename the package's directory",
            )
        if ours:
            continue
        if any(p.startswith(package.app_dir + "/") for p in paths):
            clash = f"the repository already has {package.app_dir}/ from elsewhere"
        elif own_file in paths:
            clash = f"the repository already has {own_file} from elsewhere"
        elif package.name in names:
            clash = f"{names[package.name]} already declares an Application {package.name!r}"
        else:
            continue
        raise ConfigError(
            f"{what} clashes with what is there: {clash}",
            hint="rename the package's directory (the app is named after it), or remove "
            "the other one from the template or repository",
        )
