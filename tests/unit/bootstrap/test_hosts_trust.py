"""`platform hosts` and `platform trust` through the CLI, with the hosts file in a temp dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bootstrap.cli.main import cli
from bootstrap.hostsfile import uninstall, with_block, without_block
from bootstrap.state import PlatformState


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("PLATFORM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PLATFORM_HOSTS_FILE", str(tmp_path / "hosts"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def test_block_round_trip_keeps_foreign_lines() -> None:
    text = "127.0.0.1 localhost\n10.0.0.1 printer\n"
    added = with_block(text, "ws1", "127.0.0.1", ["git.x", "demo.x"])
    assert (
        added.startswith(text)
        and "# BEGIN platform ws1\n127.0.0.1 git.x demo.x\n# END platform ws1\n" in added
    )
    again = with_block(added, "ws1", "127.0.0.2", ["git.x"])
    assert again.count("# BEGIN platform ws1") == 1 and "127.0.0.2 git.x" in again
    other = with_block(again, "ws2", "127.0.0.1", ["a.y"])
    assert (
        without_block(other, "ws1")
        == text + "# BEGIN platform ws2\n127.0.0.1 a.y\n# END platform ws2\n"
    )


def test_hosts_prints_then_writes_and_down_path_removes(runner: CliRunner, tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    printed = runner.invoke(cli, ["hosts", "--name", "ws1"])
    assert (
        printed.exit_code == 0
        and "127.0.0.1 git.localdev.me vault.localdev.me demo.localdev.me" in printed.output
    )
    assert hosts.read_text() == "127.0.0.1 localhost\n"
    written = runner.invoke(cli, ["hosts", "--name", "ws1", "--write"])
    assert written.exit_code == 0, written.output
    assert "# BEGIN platform ws1" in hosts.read_text()
    assert uninstall("ws1") is True
    assert hosts.read_text() == "127.0.0.1 localhost\n"
    assert uninstall("ws1") is False


def test_trust_without_ca_says_to_run_up(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["trust"])
    assert result.exit_code == 1
    assert "has no CA certificate yet" in result.output and "platform up" in result.output


def test_trust_prints_the_steps_for_this_system(runner: CliRunner, tmp_path: Path) -> None:
    state = PlatformState(tmp_path / "home", "local")
    state.ensure()
    (state.root / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    result = runner.invoke(cli, ["trust"])
    assert result.exit_code == 0, result.output
    assert f"To trust the platform's CA ({state.root / 'ca.crt'}), run:" in result.output
    assert (
        "update-ca-certificates" in result.output
        or "update-ca-trust" in result.output
        or "add " in result.output
    )
