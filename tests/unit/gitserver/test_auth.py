"""auth.py: the credentials file, basic auth parsing, and that no password leaks."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from stacks.errors import PermanentError
from stacks.gitserver.auth import (
    Access,
    CredentialStore,
    User,
    credentials_document,
    parse_basic,
    parse_credentials,
)

DOC = """
users:
  admin: {password: s3cret-admin, access: write}
  reader: {password: s3cret-reader, access: read}
"""


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_check_users() -> None:
    credentials = parse_credentials(DOC)
    assert credentials.check("admin", "s3cret-admin") == User("admin", Access.WRITE)
    assert credentials.check("reader", "s3cret-reader") == User("reader", Access.READ)
    assert credentials.check("admin", "s3cret-reader") is None
    assert credentials.check("nobody", "s3cret-admin") is None
    assert credentials.check("admin", "") is None
    assert "s3cret" not in repr(credentials)


def test_list_form_and_json_round_trip() -> None:
    listed = parse_credentials('{"users": [{"name": "admin", "password": "p", "access": "WRITE"}]}')
    assert listed.check("admin", "p") == User("admin", Access.WRITE)
    document = credentials_document({"a": ("pa", Access.WRITE), "r": ("pr", Access.READ)})
    parsed = parse_credentials(document)
    assert parsed.check("a", "pa") == User("a", Access.WRITE)
    assert parsed.check("r", "pr") == User("r", Access.READ)


@pytest.mark.parametrize(
    "text",
    [
        "users: {}",
        "nothing: here",
        "users: {admin: {access: write}}",
        "users: {admin: {password: '', access: write}}",
        "users: {admin: {password: topsecret, access: owner}}",
        "users: {'a:b': {password: topsecret}}",
        "users: [unclosed",
    ],
)
def test_bad_documents_are_permanent_errors_without_values(text: str) -> None:
    with pytest.raises(PermanentError) as caught:
        parse_credentials(text)
    assert "topsecret" not in str(caught.value)


def test_parse_basic() -> None:
    assert parse_basic(basic("admin", "pa:ss")) == ("admin", "pa:ss")
    assert parse_basic("basic " + base64.b64encode(b"u:p").decode()) == ("u", "p")
    assert parse_basic("Bearer abc") is None
    assert parse_basic("Basic !!!") is None
    assert parse_basic("Basic " + base64.b64encode(b"nocolon").decode()) is None
    assert parse_basic("Basic") is None


def test_store_authenticates_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "credentials.yaml"
    path.write_text(DOC)
    store = CredentialStore(path, check_interval=0)
    assert store.authenticate(basic("admin", "s3cret-admin")) == User("admin", Access.WRITE)
    assert store.authenticate(None) is None
    assert store.authenticate(basic("admin", "wrong")) is None

    path.write_text("users: {admin: {password: rotated, access: write}}")
    assert store.authenticate(basic("admin", "rotated")) == User("admin", Access.WRITE)
    assert store.authenticate(basic("admin", "s3cret-admin")) is None

    path.write_text("garbage: [")  # a broken update keeps the last good credentials
    assert store.authenticate(basic("admin", "rotated")) == User("admin", Access.WRITE)


def test_missing_file_is_permanent(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="cannot read the credentials file"):
        CredentialStore(tmp_path / "absent.yaml")
