"""Settings layering: defaults < saved < platform.yaml < env < flags, with sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootstrap.config import describe, load_settings, persistable
from stacks.errors import PermanentError


def test_defaults_and_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.name == "local"
    assert settings.engine == "k3d"
    assert settings.k3d.https_port == 443
    assert settings.sources["engine"] == "default"


def test_layers_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "platform.yaml"
    config.write_text(
        "domain: file.test\nk3d:\n  http_port: 8080\n  https_port: 8443\nengine: existing\n"
    )
    settings = load_settings(
        flags={"engine": "k3d", "name": None},
        environ={"PLATFORM_K3D_HTTPS_PORT": "9443", "PLATFORM_DOMAIN": "env.test"},
        saved={"k3d.agents": 2, "domain": "saved.test"},
    )
    assert settings.k3d.agents == 2 and settings.sources["k3d.agents"] == "saved with the platform"
    assert settings.k3d.http_port == 8080 and settings.sources["k3d.http_port"] == "platform.yaml"
    assert (
        settings.k3d.https_port == 9443
        and settings.sources["k3d.https_port"] == "env PLATFORM_K3D_HTTPS_PORT"
    )
    assert settings.domain == "env.test"
    assert settings.engine == "k3d" and settings.sources["engine"] == "flag"
    rows = {key: (value, source) for key, value, source in describe(settings)}
    assert rows["k3d.http_port"] == ("8080", "platform.yaml")


def test_persistable_keeps_platform_settings_not_run_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        flags={"engine": "existing", "timeout": 10.0, "kubeconfig": "/k"}, environ={}
    )
    assert persistable(settings) == {"engine": "existing", "kubeconfig": "/k"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("k3d:\n  http_port: [1\n", r"platform.yaml:\d+ is not valid YAML"),
        ("- a\n- b\n", "must hold a mapping"),
        ("colour: blue\n", "unknown setting.*colour"),
        ("engine: kind\n", "not one of k3d, existing"),
        ("k3d:\n  api_port: seventy\n", "k3d.api_port .* is invalid"),
        ("k3d:\n  api_port: 70000\n", "not a TCP port"),
    ],
)
def test_bad_config_file_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "platform.yaml").write_text(content)
    with pytest.raises(PermanentError, match=expected) as caught:
        load_settings(environ={})
    assert caught.value.hint


def test_missing_config_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="does not exist"):
        load_settings(config_file=tmp_path / "nope.yaml", environ={})


@pytest.mark.parametrize("name", ["UPPER", "-x", "a_b", "x" * 40])
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(PermanentError, match="not valid"):
        load_settings(flags={"name": name}, environ={})


def test_threshold_cannot_exceed_shares() -> None:
    with pytest.raises(PermanentError, match="key_threshold"):
        load_settings(
            environ={"PLATFORM_VAULT_KEY_SHARES": "1", "PLATFORM_VAULT_KEY_THRESHOLD": "2"}
        )
