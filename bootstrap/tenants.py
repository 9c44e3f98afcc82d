"""Workshop tenants: one namespace, one repository, one git login, one project each.

`platform tenant add NAME` (bootstrap/cli/tenant.py) calls `add()`, which

1. creates the repository `tenants/NAME` on the platform's git server with a first
   commit (a README), pushed as the platform's admin (the server creates a repository
   on a write user's first push);
2. commits to the GitOps repository, in one commit:
   - `registry/<cluster>/tenant-NAME.yaml`: the Namespace NAME, the ServiceAccount
     `deployer` with a RoleBinding to the built-in ClusterRole `edit` in NAME only (no
     RBAC, nothing cluster-scoped, nothing elsewhere), the AppProject `tenant-NAME`
     (that namespace, that repository, as that ServiceAccount) and the Application
     `tenant-NAME` following the repository. The root Application delivers them like
     every other file of registry/<cluster>/;
   - the tenant's git user in `tenants/git-users.yaml`, which the git server reads
     (stacks/gitserver/tenants.py): a PBKDF2 hash of the password, never the password,
     and access to `tenants/NAME` alone;
3. returns the clone URL and the password, which the command prints once. Nothing
   else keeps the password: a lost one is replaced by `remove` and `add` again.

`remove()` takes both files out in one commit (the root prunes what they delivered; the
Namespace carries `gitops.platform.local/prune: "true"`, so it goes too, with whatever
the tenant deployed in it) and deletes the repository. `names()` lists the tenants the
GitOps repository holds. Other tenants' files are never touched.

The git work happens in a temporary clone; a push that lost a race with another
commit is retried on a fresh clone.
"""

from __future__ import annotations

import re
import secrets
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bootstrap.gitops.git_client import Checkout, GitLogin, RepoNotFound, remote_heads
from stacks.errors import PermanentError, PlatformError, TransientError
from stacks.gitserver.auth import hash_password

USERS_FILE = "tenants/git-users.yaml"
REPO_PREFIX = "tenants/"
CONTROL_NAMESPACE = "platform-system"
SERVICE_ACCOUNT = "deployer"
# A DNS label (it names a namespace), short enough for `tenant-NAME` everywhere.
_NAME = re.compile(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?")
RESERVED = frozenset({"default", "platform", "demo", "admin", "reader", "root", "gitops"})
PUSH_ATTEMPTS = 4
AUTHOR = ("platform tenant", "tenant@platform.local")


@dataclass(frozen=True)
class TenantLogin:
    name: str
    clone_url: str
    username: str
    password: str

    def __repr__(self) -> str:  # never print the password, even by accident
        return f"TenantLogin(name={self.name!r}, clone_url={self.clone_url!r})"


@dataclass(frozen=True)
class GitPlace:
    """Where the platform's git server is, seen from here and from the cluster."""

    base_url: str  # as this machine reaches it (push, clone URL printed)
    cluster_base_url: str  # as the reconciler reaches it (the Applications' repoURL)
    gitops_url: str  # the GitOps repository, from here
    cluster: str  # registry/<cluster>/
    login: GitLogin  # the platform's read-write user


def validate(name: str) -> str:
    if not _NAME.fullmatch(name) or name in RESERVED or name.startswith(("kube-", "platform-")):
        raise PermanentError(
            f"{name[:60]!r} cannot name a tenant",
            hint="use lower-case letters, digits and '-' (at most 40, a letter first), not "
            "'default', 'platform', 'demo' or a kube-/platform- prefix",
        )
    return name


def registry_file(cluster: str, name: str) -> str:
    return f"registry/{cluster}/tenant-{name}.yaml"


def tenant_manifests(name: str, repo_url: str) -> str:
    """The objects of one tenant, as the YAML file committed to registry/<cluster>/."""
    label = {"app.kubernetes.io/part-of": "platform", "platform.local/tenant": name}
    early = {"gitops.platform.local/sync-wave": "-1"}  # the project before its Application
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": label,
                # Namespaces are never pruned unless they say so: this one goes with its tenant.
                "annotations": {**early, "gitops.platform.local/prune": "true"},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {
                "name": SERVICE_ACCOUNT,
                "namespace": name,
                "labels": label,
                "annotations": early,
            },
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {
                "name": SERVICE_ACCOUNT,
                "namespace": name,
                "labels": label,
                "annotations": early,
            },
            # `edit` in this namespace only: workloads, config, Secrets and the custom
            # resources whose ClusterRoles aggregate to edit; no Roles or RoleBindings.
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "edit",
            },
            "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": name}],
        },
        {
            "apiVersion": "gitops.platform.local/v1alpha1",
            "kind": "AppProject",
            "metadata": {
                "name": f"tenant-{name}",
                "namespace": CONTROL_NAMESPACE,
                "labels": label,
                "annotations": early,
            },
            "spec": {
                "description": f"workshop tenant {name}: its namespace, its repository",
                "sourceRepos": [repo_url],
                "destinations": [{"server": "*", "namespace": name}],
                "clusterResourceWhitelist": [],
                "destinationServiceAccounts": [
                    {"server": "*", "namespace": name, "defaultServiceAccount": SERVICE_ACCOUNT}
                ],
            },
        },
        {
            "apiVersion": "gitops.platform.local/v1alpha1",
            "kind": "Application",
            "metadata": {"name": f"tenant-{name}", "namespace": CONTROL_NAMESPACE, "labels": label},
            "spec": {
                "project": f"tenant-{name}",
                "source": {
                    "repoURL": repo_url,
                    "path": ".",
                    "targetRevision": "HEAD",
                    "directory": {"recurse": True},
                },
                "destination": {"namespace": name},
                # allowEmpty: a new tenant's repository holds only its README.
                "syncPolicy": {"automated": {"prune": True, "selfHeal": True, "allowEmpty": True}},
                "interval": "3m",
            },
        },
    ]
    header = (
        f"# Workshop tenant {name}: made by `platform tenant add {name}`; "
        f"`platform tenant remove {name}` deletes it.\n"
    )
    return header + yaml.safe_dump_all(docs, sort_keys=False)


def users_with(text: str, name: str, password_hash: str) -> str:
    users = _users(text)
    users[name] = {
        "passwordHash": password_hash,
        "access": "write",
        "repos": [f"{REPO_PREFIX}{name}"],
    }
    return _users_text(users)


def users_without(text: str, name: str) -> str:
    users = _users(text)
    users.pop(name, None)
    return _users_text(users)


def _users(text: str) -> dict[str, Any]:
    document = yaml.safe_load(text) if text.strip() else None
    users = document.get("users") if isinstance(document, dict) else None
    return dict(users) if isinstance(users, dict) else {}


def _users_text(users: dict[str, Any]) -> str:
    header = (
        "# Git users of the workshop tenants (`platform tenant add`): PBKDF2 hashes only.\n"
        "# The git server reads this file at each push (--repo-users).\n"
    )
    return header + yaml.safe_dump({"users": dict(sorted(users.items()))}, sort_keys=False)


def names_in(root: Path, cluster: str) -> list[str]:
    folder = root / "registry" / cluster
    return sorted(p.name[len("tenant-") : -len(".yaml")] for p in folder.glob("tenant-*.yaml"))


# ---- I/O -------------------------------------------------------------------------------


def _commit_gitops(
    place: GitPlace, message: str, change: Callable[[Path], bool], workdir: Path
) -> str:
    """Clone, `change(root)` (False: nothing to do), commit, push; again on a lost race."""
    for attempt in range(PUSH_ATTEMPTS):
        checkout = Checkout.clone(place.gitops_url, workdir / f"gitops-{attempt}", place.login)
        try:
            if not change(checkout.root):
                return ""
            checkout.write_tree({})
            sha = checkout.commit(message, AUTHOR)
            checkout.push()
            return sha
        except TransientError:  # someone pushed first (or a blip): a fresh clone again
            if attempt == PUSH_ATTEMPTS - 1:
                raise
        finally:
            checkout.repo.close()  # GitPython's cat-file helpers end with it
    return ""


def add(place: GitPlace, name: str) -> TenantLogin:
    name = validate(name)
    password = secrets.token_urlsafe(18)
    repo = f"{REPO_PREFIX}{name}"
    local_url = f"{place.base_url}/{repo}.git"
    with tempfile.TemporaryDirectory(prefix="platform-tenant-") as temp:
        work = Path(temp)
        seeded: list[bool] = []

        def change(root: Path) -> bool:
            target = root / registry_file(place.cluster, name)
            if target.exists():
                raise PermanentError(
                    f"tenant {name!r} exists already",
                    hint=f"`platform tenant remove {name}` first (its password is not kept anywhere)",
                )
            if not seeded:  # its repository before the Application that follows it
                _seed_repository(local_url, name, place.login, work / "tenant")
                seeded.append(True)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(tenant_manifests(name, f"{place.cluster_base_url}/{repo}.git"))
            users = root / USERS_FILE
            users.parent.mkdir(parents=True, exist_ok=True)
            before = users.read_text() if users.exists() else ""
            users.write_text(users_with(before, name, hash_password(password)))
            return True

        _commit_gitops(place, f"tenant add {name}", change, work)
    return TenantLogin(name, local_url, name, password)


def _seed_repository(url: str, name: str, login: GitLogin, directory: Path) -> None:
    try:
        if remote_heads(url, login):
            return  # kept from before (a tenant removed by hand): its history stays
    except RepoNotFound:
        pass
    checkout = Checkout.init(url, directory, login)
    checkout.write_tree(
        {
            "README.md": (
                f"# {name}'s deployments\n\nEvery YAML file here is applied to the namespace "
                f"`{name}` a few seconds after each push (as the ServiceAccount `{name}/"
                f"{SERVICE_ACCOUNT}`); files deleted here are deleted there.\n"
            ).encode()
        }
    )
    checkout.commit("first commit", AUTHOR)
    try:
        checkout.push("main")
    finally:
        checkout.repo.close()


def remove(place: GitPlace, name: str) -> bool:
    """Take the tenant out of the GitOps repository and delete its repository; False when
    there was no such tenant."""
    name = validate(name)
    with tempfile.TemporaryDirectory(prefix="platform-tenant-") as temp:

        def change(root: Path) -> bool:
            target = root / registry_file(place.cluster, name)
            users = root / USERS_FILE
            found = target.exists()
            if found:
                target.unlink()
            if users.exists():
                before = users.read_text()
                after = users_without(before, name)
                if after != before:
                    users.write_text(after)
                    found = True
            return found

        sha = _commit_gitops(place, f"tenant remove {name}", change, Path(temp))
    deleted = _delete_repository(place, f"{REPO_PREFIX}{name}")
    return bool(sha) or deleted


def names(place: GitPlace) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="platform-tenant-") as temp:
        checkout = Checkout.clone(place.gitops_url, Path(temp) / "gitops", place.login)
        checkout.repo.close()
        return names_in(checkout.root, place.cluster)


def _delete_repository(place: GitPlace, repo: str) -> bool:
    url = f"{place.base_url}/api/repos/{repo}"
    if not url.startswith(("http://", "https://")):
        raise PermanentError(f"the git server's URL {place.base_url!r} is not http(s)")
    request = urllib.request.Request(url, method="DELETE")  # noqa: S310 - checked above
    header = place.login.header().split(": ", 1)[1]
    request.add_header("Authorization", header)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - the platform's own server
            return bool(answer.status == 204)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return False
        raise PlatformError(f"failed to delete repository '{repo}': HTTP {error.code}") from None
    except OSError as error:
        raise TransientError(f"failed to delete repository '{repo}': {error}") from None
