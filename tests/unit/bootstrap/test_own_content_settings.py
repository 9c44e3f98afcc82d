"""The `template` and `packages` settings (`platform up --template`, `--package`):
layering, absolute paths, saving with the platform, and every bad value as a ConfigError
(exit 2) that says what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bootstrap.config import (
    ConfigError,
    check_content,
    is_git_url,
    load_settings,
    parse_template_url,
    persistable,
)


def test_flags_win_and_paths_become_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf/platform.yaml").write_text("template: tpl\npackages: [a, ../b]\n")
    from_file = load_settings(config_file=tmp_path / "conf/platform.yaml", environ={})
    # Relative to the file that names them, not to where `platform up` runs.
    assert from_file.template == str(tmp_path / "conf/tpl")
    assert from_file.packages == (str(tmp_path / "conf/a"), str(tmp_path / "b"))
    env = load_settings(
        config_file=tmp_path / "conf/platform.yaml",
        environ={"PLATFORM_PACKAGES": "x:/abs/y:"},
    )
    assert env.packages == (str(tmp_path / "x"), "/abs/y")
    assert env.sources["packages"] == "env PLATFORM_PACKAGES"
    flags = load_settings(
        flags={"packages": ("p",), "template": "https://example.com/t.git#v1"},
        config_file=tmp_path / "conf/platform.yaml",
        environ={"PLATFORM_PACKAGES": "x"},
    )
    assert flags.packages == (str(tmp_path / "p"),) and flags.sources["packages"] == "flag"
    assert flags.template == "https://example.com/t.git#v1"  # a URL is not a path


def test_saved_with_the_platform_and_kept_by_a_run_without_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first = load_settings(flags={"packages": ("app",), "template": "t"}, environ={})
    saved = persistable(first)
    assert saved["packages"] == [str(tmp_path / "app")] and saved["template"] == str(tmp_path / "t")
    monkeypatch.chdir("/")
    again = load_settings(environ={}, saved=saved)
    assert again.packages == (str(tmp_path / "app"),)
    assert again.sources["packages"] == "saved with the platform"
    # An empty environment variable clears them (a flag would replace them).
    cleared = load_settings(environ={"PLATFORM_PACKAGES": ""}, saved=saved)
    assert cleared.packages == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://example.com/t.git", ("https://example.com/t.git", "")),
        ("https://example.com/t.git#release/1.2", ("https://example.com/t.git", "release/1.2")),
        ("git@example.com:org/t.git#v1", ("git@example.com:org/t.git", "v1")),
        ("file:///srv/t.git#0123abc", ("file:///srv/t.git", "0123abc")),
    ],
)
def test_template_urls(value: str, expected: tuple[str, str]) -> None:
    assert is_git_url(value)
    ref = parse_template_url(value)
    assert (ref.url, ref.ref) == expected


@pytest.mark.parametrize("value", ["./tpl", "tpl", "/abs/tpl", "C:tpl", "-x@h:p"])
def test_directories_are_not_urls(value: str) -> None:
    assert not is_git_url(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("https://user:secret@example.com/t.git", "carries credentials"),
        ("https://token@example.com/t.git", "carries credentials"),
        ("ftp://example.com/t.git", "scheme 'ftp'"),
        ("https://example.com/t.git#", "names no ref"),
        ("https://example.com/t.git#a..b", "not a branch, tag or commit"),
        ("https://example.com/t.git#-upload-pack=x", "not a branch, tag or commit"),
        ("https:///t.git", "has no host"),
    ],
)
def test_bad_template_urls(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(flags={"template": value}, environ={})
    assert "secret" not in str(caught.value) and "token@" not in str(caught.value)


@pytest.mark.parametrize(
    ("packages", "message"),
    [
        (("My_App",), "is named 'My_App', which is not a DNS label"),
        (("a/shop", "b/shop"), "would both become apps/shop/"),
        (("x" * 64,), "not a DNS label"),
    ],
)
def test_bad_packages(
    packages: tuple[str, ...], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=message):
        load_settings(flags={"packages": packages}, environ={})


def test_a_package_list_must_be_a_list_of_strings(tmp_path: Path) -> None:
    config = tmp_path / "platform.yaml"
    config.write_text("packages: [{a: 1}]\n")
    with pytest.raises(ConfigError, match=r"packages .* is not a list of strings"):
        load_settings(config_file=config, environ={})


def test_missing_or_file_paths_are_one_sentence_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notadir").write_text("x: 1\n")
    settings = load_settings(flags={"template": "nowhere"}, environ={})
    with pytest.raises(
        ConfigError, match=r"template directory .*nowhere \(from --template\) does not exist"
    ):
        check_content(settings)
    settings = load_settings(environ={"PLATFORM_PACKAGES": "notadir"})
    with pytest.raises(
        ConfigError, match=r"package .*notadir \(from env PLATFORM_PACKAGES\) is a file"
    ):
        check_content(settings)
    (tmp_path / "ok").mkdir()
    check_content(load_settings(flags={"packages": ("ok",), "template": "ok"}, environ={}))


def test_a_saved_package_that_is_gone_says_how_to_drop_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={}, saved={"packages": [str(tmp_path / "gone")]})
    with pytest.raises(
        ConfigError, match=r"gone \(saved with the platform\) does not exist"
    ) as caught:
        check_content(settings)
    assert "PLATFORM_PACKAGES=" in caught.value.hint


def test_up_shows_them_in_the_plan_and_refuses_a_missing_one_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from bootstrap.cli.main import cli

    monkeypatch.setenv("PLATFORM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop/cm.yaml").write_text("kind: ConfigMap\n")
    base = ["up", "--dry-run", "-o", "json", "--engine", "existing", "--kubeconfig", "kc"]
    result = CliRunner().invoke(
        cli, [*base, "--template", "https://example.com/ws.git#v1", "--package", "shop"]
    )
    assert result.exit_code == 0, result.output
    plan = {
        row["stage"]: row["changes"] for row in json.loads(result.output.splitlines()[-1])["plan"]
    }
    assert "template: https://example.com/ws.git at v1" in plan["seed"]
    assert any(f"{tmp_path / 'shop'} as apps/shop/" in line for line in plan["seed"])
    missing = CliRunner().invoke(cli, [*base, "--package", "nowhere"])
    assert missing.exit_code == 2
    assert "nowhere (from --package) does not exist" in missing.output
