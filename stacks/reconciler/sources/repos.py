"""Credentials for chart repositories and OCI registries, from Secrets (Argo CD's way).

Argo CD reads repository Secrets by label (`argocd.argoproj.io/secret-type: repository`
for one URL, `repo-creds` for every URL under a prefix) with keys `url`, `username`,
`password`. Here the label is `gitops.platform.local/secret-type`, and the Secrets are
read in the Application's own namespace, so one team's Application never borrows
another's credentials. An exact `repository` match wins over the longest `repo-creds`
prefix; `spec.source.secretRef` (username, password) wins over both.
`insecureOCIForceHttp: "true"` makes an OCI registry be spoken to over plain HTTP (Argo
CD's field; for a registry on localhost).

The password stays in memory: charts.py sends it in an Authorization header or writes it
to a private file that only the helm process it starts reads, never argv or a log.

Called by renderer.py.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

SECRET_TYPE_LABEL = "gitops.platform.local/secret-type"  # noqa: S105 - a label name
SELECTOR = f"{SECRET_TYPE_LABEL} in (repository,repo-creds)"


@dataclass(frozen=True)
class RepoAccess:
    username: str = ""
    password: str = ""
    plain_http: bool = False

    def __repr__(self) -> str:  # never print a password, even in a debugger
        return f"RepoAccess(username={self.username!r}, password=***, plain_http={self.plain_http})"

    @property
    def has_credentials(self) -> bool:
        return bool(self.username or self.password)


def normalize(url: str) -> str:
    return url.strip().rstrip("/").lower()


def _text(data: dict[str, Any], key: str) -> str:
    raw = data.get(key)
    if not isinstance(raw, str):
        return ""
    try:
        return base64.b64decode(raw).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def access_for(url: str, secrets: Iterable[dict[str, Any]]) -> RepoAccess:
    """The access for `url` from label-selected repository Secrets (none: anonymous)."""
    wanted = normalize(url)
    exact: RepoAccess | None = None
    best: tuple[int, RepoAccess] | None = None
    for secret in secrets:
        labels = (secret.get("metadata") or {}).get("labels") or {}
        kind = labels.get(SECRET_TYPE_LABEL)
        data = secret.get("data") or {}
        secret_url = normalize(_text(data, "url"))
        if not secret_url:
            continue
        found = RepoAccess(
            _text(data, "username"),
            _text(data, "password"),
            _text(data, "insecureOCIForceHttp").lower() == "true",
        )
        if kind == "repository" and secret_url == wanted:
            exact = found
        elif (
            kind == "repo-creds"
            and (wanted == secret_url or wanted.startswith(secret_url + "/"))
            and (best is None or len(secret_url) > best[0])
        ):
            best = (len(secret_url), found)
    if exact is not None:
        return exact
    return best[1] if best is not None else RepoAccess()
