"""Users, their access, and HTTP basic auth for the git server.

`app.py` calls `CredentialStore.authenticate()` with each request's Authorization
header. The credentials file (YAML or JSON; in the cluster a mounted Secret, generated at
bootstrap with `credentials_document()`) names users with a password and an access level:

    users:
      admin:  {password: "...", access: write}   # bootstrap, people
      reader: {password: "...", access: read}    # the cluster

Passwords are compared with `hmac.compare_digest`, and an unknown user costs the same
comparison as a known one. The file is re-read when it changes on disk (Kubernetes
updates mounted Secrets in place). No password ever reaches a log line or an exception.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
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


@dataclass(frozen=True)
class User:
    name: str
    access: Access

    @property
    def can_write(self) -> bool:
        return self.access is Access.WRITE


@dataclass(frozen=True, repr=False)
class Credentials:
    """The parsed credentials file: user name -> (password bytes, access)."""

    entries: Mapping[str, tuple[bytes, Access]]

    def __repr__(self) -> str:  # never print passwords, even by accident
        return f"Credentials(users={sorted(self.entries)})"

    def check(self, name: str, password: str) -> User | None:
        entry = self.entries.get(name)
        expected = entry[0] if entry else _DUMMY
        matches = hmac.compare_digest(expected, password.encode("utf-8"))
        if entry is None or not matches:
            return None
        return User(name=name, access=entry[1])


def parse_credentials(text: str, source: str = "credentials") -> Credentials:
    """Parse the YAML/JSON credentials document; errors name the problem, never a value."""
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
    entries: dict[str, tuple[bytes, Access]] = {}
    for name, spec in users.items():
        name = str(name)
        if not name or ":" in name:
            raise PermanentError(f"{source}: user name {name!r} is empty or contains ':'")
        if not isinstance(spec, dict) or not isinstance(spec.get("password"), str):
            raise PermanentError(f"{source}: user {name!r} has no password string")
        if not spec["password"]:
            raise PermanentError(f"{source}: user {name!r} has an empty password")
        try:
            access = Access(str(spec.get("access", "read")).lower())
        except ValueError:
            raise PermanentError(
                f"{source}: user {name!r} has access {spec.get('access')!r}",
                hint="access is `read` or `write`",
            ) from None
        entries[name] = (spec["password"].encode("utf-8"), access)
    return Credentials(entries=entries)


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

    def __init__(self, path: Path, check_interval: float = 2.0) -> None:
        self._path = path
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
        return self.current().check(*parsed)
