"""Where the cluster pulls the GitOps repository from, and with which read-only login.

The platform's own git server is reached inside the cluster at its Service; an external
one (`git.url`, e.g. a team's Gitea, or the git server run as a host process in the
e2e tests) at its URL. The read-only password comes from the file named in the settings
or from the one the `gitserver` stage generated. Called by the reconciler stage, the
GitOps repository renderer, and `platform diff` and `platform ui` (which fetch the
repository on this machine with the cluster's login: write_git_credentials).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bootstrap.config import Settings
from bootstrap.state import PlatformState
from stacks import redact
from stacks.errors import PermanentError, PlatformError

REPO = "gitops"
# The platform's own git server in the cluster (stacks/gitserver/manifests/30-service.yaml).
GIT_NAMESPACE = "platform-git"
GIT_SERVICE = "platform-gitserver"
GIT_SERVICE_PORT = 80
IN_CLUSTER_BASE_URL = f"http://{GIT_SERVICE}.{GIT_NAMESPACE}.svc"
READONLY_PASSWORD_SECRET = "git-readonly-password"  # noqa: S105 - a file name in secrets/


@dataclass(frozen=True)
class GitSource:
    base_url: str
    readonly_username: str
    readonly_password: str

    @property
    def repo_url(self) -> str:
        return f"{self.base_url}/{REPO}.git"


def _read_password(path: str, what: str) -> str:
    try:
        value = Path(path).expanduser().read_text().strip()
    except OSError as error:
        raise PermanentError(
            f"cannot read the {what} from {path}: {error.strerror}",
            hint="fix the path in the settings (see `platform config`)",
        ) from error
    redact.register(value)
    return value


def cluster_git_source(settings: Settings, state: PlatformState) -> GitSource:
    git = settings.git
    if git.url:
        if not git.readonly_password_file:
            raise PermanentError(
                "git.url names an existing git server but git.readonly_password_file is not set",
                hint="set git.readonly_username and git.readonly_password_file (the cluster pulls with them)",
            )
        password = _read_password(git.readonly_password_file, "read-only git password")
        return GitSource(git.url.rstrip("/"), git.readonly_username, password)
    password = (state.read_secret(READONLY_PASSWORD_SECRET) or "").strip()
    if not password:
        raise PermanentError(
            "the read-only git password of the platform's git server is missing",
            hint="run `platform up --from gitserver` to create the git server's credentials again",
        )
    redact.register(password)
    return GitSource(IN_CLUSTER_BASE_URL, git.readonly_username, password)


def write_git_credentials(settings: Settings, state: PlatformState, folder: Path) -> Path | None:
    """A git-credentials file (0600) in `folder` with the read-only login the cluster pulls
    with, so a fetch on this machine of a repository the Application names no Secret for
    logs in as the reconciler does; None when this platform has no such login (an
    Application on another cluster, or a platform not up yet). `folder` must be private
    (a TemporaryDirectory, 0700) and the caller removes it."""
    from stacks.reconciler.install import git_credentials_line

    try:
        source = cluster_git_source(settings, state)
    except PlatformError:
        return None
    path = folder / "git-credentials"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(
            git_credentials_line(
                source.base_url, source.readonly_username, source.readonly_password
            )
        )
    return path
