"""program.py: flags, the listen address, configuration errors as exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from stacks.errors import PermanentError
from stacks.gitserver.program import main, parse_args, parse_listen


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen(":9000") == ("0.0.0.0", 9000)  # noqa: S104
    assert parse_listen("[::1]:80") == ("::1", 80)
    for bad in ("8080", "host:", "host:99999", "host:http"):
        with pytest.raises(PermanentError):
            parse_listen(bad)


def test_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATFORM_GIT_WEBHOOK_URLS", "http://a/h,http://b/h")
    monkeypatch.setenv("PLATFORM_GIT_THREADS", "3")
    args = parse_args(["--data-dir", "/d", "--credentials", "/c"])
    assert args.webhook_url == ["http://a/h", "http://b/h"]
    assert args.threads == 3
    args = parse_args(["--webhook-url", "http://x/h", "--create-repo", "gitops"])
    assert args.webhook_url == ["http://x/h"]
    assert args.create_repo == ["gitops"]


def test_configuration_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data-dir", str(tmp_path), "--listen", "127.0.0.1:0"]) == 2
    assert "no credentials file" in capsys.readouterr().err
    creds = tmp_path / "c.yaml"
    creds.write_text("users: {a: {password: p, access: write}}")
    code = main(["--credentials", str(creds), "--webhook-url", "http://x/h", "--listen", ":0"])
    assert code == 2
    assert "--webhook-secret-file" in capsys.readouterr().err


def test_hardening_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    args = parse_args([])
    assert args.max_body_size == 2 * 1024**3 - 256 * 1024**2
    assert (args.max_connections, args.idle_timeout, args.header_timeout) == (200, 60, 15)
    assert (args.max_failed_logins, args.allow_force_push) == (10, False)
    monkeypatch.setenv("PLATFORM_GIT_MAX_BODY_SIZE", "1Gi")
    monkeypatch.setenv("PLATFORM_GIT_ALLOW_FORCE_PUSH", "true")
    monkeypatch.setenv("PLATFORM_GIT_MAX_FAILED_LOGINS", "0")
    args = parse_args(["--header-timeout", "5"])
    assert args.max_body_size == 1024**3
    assert (args.allow_force_push, args.max_failed_logins, args.header_timeout) == (True, 0, 5)
