"""auth.py for tenants (issue 19): hashed passwords, users limited to some repositories,
and the rules for a users document committed to git."""

from __future__ import annotations

import json

import pytest

from stacks.errors import PermanentError
from stacks.gitserver.auth import Access, hash_password, parse_credentials


def doc(**users: object) -> str:
    return json.dumps({"users": users})


def test_hashed_password_checks_and_never_holds_the_password() -> None:
    stored = hash_password("correct horse")
    assert "correct horse" not in stored and stored.startswith("pbkdf2-sha256$")
    creds = parse_credentials(
        doc(alice={"passwordHash": stored, "access": "write", "repos": ["tenants/alice"]})
    )
    user = creds.check("alice", "correct horse")
    assert user is not None and user.access is Access.WRITE
    assert creds.check("alice", "wrong") is None
    assert creds.check("bob", "correct horse") is None


def test_repos_limit_a_user_and_no_repos_means_all() -> None:
    creds = parse_credentials(
        doc(
            admin={"password": "a", "access": "write"},
            alice={"password": "p", "access": "write", "repos": ["tenants/alice.git"]},
        )
    )
    alice = creds.check("alice", "p")
    admin = creds.check("admin", "a")
    assert alice is not None and admin is not None
    assert alice.may_access("tenants/alice") and not alice.unrestricted
    assert not alice.may_access("tenants/bob") and not alice.may_access("gitops")
    assert admin.unrestricted and admin.may_access("tenants/bob")


@pytest.mark.parametrize(
    ("users", "why"),
    [
        ({"a": {"password": "s3cret-value", "repos": ["tenants/a"]}}, "no passwordHash"),
        ({"a": {"passwordHash": "x"}}, "must name its repos"),
        ({"a": {"passwordHash": "x", "repos": ["gitops"]}}, "outside tenants/"),
        ({"a": {"passwordHash": "x", "repos": ["tenants/../gitops"]}}, "outside tenants/"),
        ({"a": {"passwordHash": "md5$1$x$y", "repos": ["tenants/a"]}}, "not pbkdf2-sha256"),
        (
            {"a": {"passwordHash": "pbkdf2-sha256$999999999$AA==$AA==", "repos": ["tenants/a"]}},
            "not pbkdf2-sha256",
        ),
    ],
)
def test_committed_documents_are_strict(users: dict[str, object], why: str) -> None:
    valid = hash_password("p")
    for spec in users.values():
        if isinstance(spec, dict) and spec.get("passwordHash") == "x":
            spec["passwordHash"] = valid
    with pytest.raises(PermanentError) as caught:
        parse_credentials(json.dumps({"users": users}), hashed_only=True, repos_under="tenants/")
    assert why in str(caught.value)
    assert "s3cret-value" not in str(caught.value)
