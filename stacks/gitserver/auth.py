"""Users, their access, and HTTP basic auth for the git server.

`app.py` calls `CredentialStore.authenticate()` with each request's Authorization
header. The credentials file (YAML or JSON; in the cluster a mounted Secret, generated at
bootstrap with `credentials_document()`) names users with a password and an access level:

    users:
      admin:  {password: "...", access: write}   # bootstrap, people
      reader: {password: "...", access: read}    # the cluster
      alice:  {passwordHash: "pbkdf2-sha256$...", access: write, repos: [tenants/alice]}

A user with `repos` (exact names or globs) reaches only those repositories; a user
without reaches every one. `passwordHash` (`hash_password()`: PBKDF2-SHA256, salted)
instead of `password` lets a credentials document be committed to git, as the tenant
users of `platform tenant add` are (tenants.py reads them from the GitOps repository).

Passwords are compared with `hmac.compare_digest`, and an unknown user costs the same
comparison as a known one. The file is re-read when it changes on disk (Kubernetes
updates mounted Secrets in place). No password ever reaches a log line or an exception.
"""

from __future__ import annotations

import base64
import binascii
import enum
import fnmatch
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stacks.errors import PermanentError

log = logging.getLogger("platform.gitserver.auth")

# Compared against when the user is unknown, so that timing does not reveal user names.
_DUMMY = b"\x00" * 32


class Access(enum.StrEnum):
    READ = "read"
    WRITE = "write"


HASH_SCHEME = "pbkdf2-sha256"
HASH_ITERATIONS = 60_000  # ~30 ms per login of a hashed user (a clone is 2-3 requests)
MAX_HASH_ITERATIONS = 1_000_000  # a hostile document cannot make one login cost minutes


@dataclass(frozen=True)
class User:
    name: str
    access: Access
    repos: tuple[str, ...] | None = None  # None: every repository

    @property
    def can_write(self) -> bool:
        return self.access is Access.WRITE

    @property
    def unrestricted(self) -> bool:
        return self.repos is None

    def may_access(self, repo: str) -> bool:
        return self.repos is None or any(fnmatch.fnmatchcase(repo, p) for p in self.repos)


def hash_password(password: str, iterations: int = HASH_ITERATIONS) -> str:
    """`pbkdf2-sha256$ITERATIONS$SALT$HASH` (base64): safe to commit; `Credentials.check`
    compares a login against it."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    b64 = base64.b64encode
    return f"{HASH_SCHEME}${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def _parse_hash(text: str) -> tuple[int, bytes, bytes] | None:
    scheme, _, rest = text.partition("$")
    iterations, _, rest = rest.partition("$")
    salt, _, digest = rest.partition("$")
    if scheme != HASH_SCHEME or not iterations.isdigit():
        return None
    rounds = int(iterations)
    if not 1_000 <= rounds <= MAX_HASH_ITERATIONS:
        return None
    try:
        return (
            rounds,
            base64.b64decode(salt, validate=True),
            base64.b64decode(digest, validate=True),
        )
    except binascii.Error:
        return None


@dataclass(frozen=True)
class _Entry:
    secret: bytes  # the password, or the PBKDF2 digest when `rounds` > 0
    access: Access
    repos: tuple[str, ...] | None = None
    rounds: int = 0
    salt: bytes = b""

    def matches(self, password: str) -> bool:
        given = password.encode("utf-8")
        if self.rounds:
            given = hashlib.pbkdf2_hmac("sha256", given, self.salt, self.rounds)
        return hmac.compare_digest(self.secret, given)


@dataclass(frozen=True, repr=False)
class Credentials:
    """The parsed credentials file: user name -> its password (or hash), access, repos."""

    entries: Mapping[str, _Entry]

    def __repr__(self) -> str:  # never print passwords, even by accident
        return f"Credentials(users={sorted(self.entries)})"

    def check(self, name: str, password: str) -> User | None:
        entry = self.entries.get(name)
        if entry is None:
            # As long as a known user's check: timing reveals no user names.
            rounds = max((e.rounds for e in self.entries.values()), default=0)
            _Entry(_DUMMY, Access.READ, rounds=rounds, salt=_DUMMY).matches(password)
            return None
        if not entry.matches(password):
            return None
        return User(name=name, access=entry.access, repos=entry.repos)


def parse_credentials(
    text: str, source: str = "credentials", hashed_only: bool = False, repos_under: str = ""
) -> Credentials:
    """Parse the YAML/JSON credentials document; errors name the problem, never a value.

    `hashed_only`: refuse plain `password`s (a document committed to git);
    `repos_under`: every user must name `repos`, all of them under this prefix."""
    try:
        document: Any = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PermanentError(
            f"{source} is not valid YAML or JSON",
            hint="write it as `users: {NAME: {password: ..., access: read|write}}`",
        ) from error
    users = document.get("users") if isinstance(document, dict) else None
    if isinstance(users, list):
        users = {
            str(item.get("name")): item
            for item in users
            if isinstance(item, dict) and item.get("name")
        }
    if not isinstance(users, dict) or not users:
        raise PermanentError(
            f"{source} has no users",
            hint="write it as `users: {NAME: {password: ..., access: read|write}}`",
        )
    entries: dict[str, _Entry] = {}
    for name, spec in users.items():
        name = str(name)
        if not name or ":" in name or len(name) > 100:
            raise PermanentError(
                f"{source}: user name {name[:100]!r} is empty, long or contains ':'"
            )
        if not isinstance(spec, dict):
            raise PermanentError(f"{source}: user {name!r} is not a mapping")
        repos = _repos(spec.get("repos"), source, name, repos_under)
        if isinstance(spec.get("passwordHash"), str):
            parsed = _parse_hash(spec["passwordHash"])
            if parsed is None:
                raise PermanentError(
                    f"{source}: user {name!r} has a passwordHash that is not {HASH_SCHEME}",
                    hint="make it with stacks.gitserver.auth.hash_password",
                )
            rounds, salt, digest = parsed
            entries[name] = _Entry(digest, _access(spec, source, name), repos, rounds, salt)
            continue
        if hashed_only:
            raise PermanentError(
                f"{source}: user {name!r} has no passwordHash (plain passwords are refused here)"
            )
        if not isinstance(spec.get("password"), str):
            raise PermanentError(f"{source}: user {name!r} has no password string")
        if not spec["password"]:
            raise PermanentError(f"{source}: user {name!r} has an empty password")
        entries[name] = _Entry(spec["password"].encode("utf-8"), _access(spec, source, name), repos)
    return Credentials(entries=entries)


def _access(spec: Mapping[str, Any], source: str, name: str) -> Access:
    try:
        return Access(str(spec.get("access", "read")).lower())
    except ValueError:
        raise PermanentError(
            f"{source}: user {name!r} has access {str(spec.get('access'))[:20]!r}",
            hint="access is `read` or `write`",
        ) from None


def _repos(value: Any, source: str, name: str, under: str) -> tuple[str, ...] | None:
    if value is None:
        if under:
            raise PermanentError(f"{source}: user {name!r} must name its repos (under {under})")
        return None
    if (
        not isinstance(value, list)
        or len(value) > 100
        or not all(isinstance(r, str) and 0 < len(r) <= 200 for r in value)
    ):
        raise PermanentError(f"{source}: user {name!r} has repos that are not a list of names")
    if under and not all(r.startswith(under) and ".." not in r for r in value):
        raise PermanentError(f"{source}: user {name!r} names repos outside {under}")
    return tuple(r[:-4] if r.endswith(".git") else r for r in value)


def credentials_document(users: Mapping[str, tuple[str, Access]]) -> str:
    """The credentials file for `users` (name -> (password, access)), as JSON text.

    The bootstrap stage puts this into the git server's Secret; JSON is valid YAML.
    """
    return json.dumps(
        {
            "users": {
                name: {"password": password, "access": str(access)}
                for name, (password, access) in users.items()
            }
        },
        indent=2,
        sort_keys=True,
    )


def parse_basic(header: str) -> tuple[str, str] | None:
    """`Basic base64(user:password)` -> (user, password); None when absent or malformed."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, sep, password = decoded.partition(":")
    if not sep:
        return None
    return name, password


class CredentialStore:
    """The credentials file on disk, re-read when its modification time changes."""

    def __init__(
        self,
        path: Path,
        check_interval: float = 2.0,
        extra: Callable[[], Credentials | None] | None = None,
    ) -> None:
        self._path = path
        self._extra = extra  # more users (tenants.py), never shadowing this file's
        self._check_interval = check_interval
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._credentials = self._load()

    def _file_stamp(self) -> tuple[int, int]:
        stat = os.stat(self._path)
        return stat.st_mtime_ns, stat.st_ino

    def _load(self) -> Credentials:
        try:
            stamp = self._file_stamp()
            text = self._path.read_text(encoding="utf-8")
        except OSError as error:
            raise PermanentError(
                f"cannot read the credentials file {self._path}: {error.strerror}",
                hint="pass --credentials with a readable YAML/JSON file",
            ) from error
        credentials = parse_credentials(text, source=f"credentials file {self._path}")
        self._stamp = stamp
        return credentials

    def current(self) -> Credentials:
        now = time.monotonic()
        if now - self._checked < self._check_interval:
            return self._credentials
        with self._lock:
            self._checked = now
            try:
                changed = self._file_stamp() != self._stamp
                if changed:
                    self._credentials = self._load()
                    log.info("reloaded credentials file %s", self._path)
            except (OSError, PermanentError) as error:
                log.warning("failed to reload credentials file %s: %s", self._path, error)
            return self._credentials

    def authenticate(self, header: str | None) -> User | None:
        """The user named by a basic Authorization header, if the password matches."""
        if not header:
            return None
        parsed = parse_basic(header)
        if parsed is None:
            return None
        main = self.current()
        if parsed[0] not in main.entries and self._extra is not None:
            extra = self._extra()
            if extra is not None:
                return extra.check(*parsed)
        return main.check(*parsed)
