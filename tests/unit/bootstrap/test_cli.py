"""The CLI as users read it: CliRunner with an isolated home, NO_COLOR and a fixed width."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bootstrap import __version__
from bootstrap.cli.main import cli
from bootstrap.state import PlatformState

HEAVY = ("kubernetes", "hvac", "docker", "git", "python_terraform", "rich")


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("PLATFORM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def test_help_lists_every_command(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("up", "down", "status", "list", "doctor", "config", "run", "version"):
        assert f"  {command} " in result.output
    assert "Create or resume a platform" in result.output


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["version"])
    assert result.exit_code == 0 and result.output.startswith(f"platform {__version__} (python ")


def test_config_shows_values_and_sources(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "platform.yaml").write_text("domain: example.test\n")
    monkeypatch.setenv("PLATFORM_K3D_AGENTS", "3")
    result = runner.invoke(cli, ["config", "--engine", "existing"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    assert "'example.test'" in lines["domain"] and "platform.yaml" in lines["domain"]
    assert "env PLATFORM_K3D_AGENTS" in lines["k3d.agents"]
    assert "'existing'" in lines["engine"] and "flag" in lines["engine"]


def test_config_json(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["config", "-o", "json"])
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["event"] == "summary"
    assert summary["settings"]["engine"] == {"value": "k3d", "source": "default"}


def test_bad_config_file_is_one_sentence_and_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "platform.yaml").write_text("k3d: [unclosed\n")
    result = runner.invoke(cli, ["status"])
    assert result.exit_code == 2
    assert (
        "Error: The config file platform.yaml:" in result.output
        and "is not valid YAML" in result.output
    )
    assert "To fix: " in result.output and "Traceback" not in result.output


def test_status_of_a_platform_that_does_not_exist(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["status", "--name", "ghost"])
    assert result.exit_code == 1
    assert (
        "Platform 'ghost' does not exist. Create it with `platform up --name ghost`."
        in result.output
    )


def test_list_shows_each_platform_and_its_state(runner: CliRunner, tmp_path: Path) -> None:
    assert "No platforms under" in runner.invoke(cli, ["list"]).output
    home = tmp_path / "home"
    PlatformState(home, "ws1").update_stage("cluster", outcome="failed")
    PlatformState(home, "ws2").update_stage("cluster", outcome="done")
    result = runner.invoke(cli, ["list"])
    assert result.exit_code == 0
    rows = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert "stopped at cluster" in rows["ws1"] and " up " in rows["ws2"] + " "


def test_dry_run_prints_the_plan_and_changes_nothing(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(
        cli, ["up", "--dry-run", "--engine", "existing", "--kubeconfig", str(tmp_path / "kc")]
    )
    assert result.exit_code == 0, result.output
    assert "dry run: nothing changed" in result.output
    assert "preflight" in result.output and "cluster" in result.output
    assert not (tmp_path / "home" / "local" / "state.json").exists()


def test_unknown_stage_is_refused_with_the_list(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["up", "--only", "nope", "--engine", "existing"])
    assert result.exit_code == 2
    assert (
        "There is no stage named 'nope'" in result.output
        and "preflight, tools, cluster" in result.output
    )


@pytest.mark.parametrize("args", [["--help"], ["version"]])
def test_fast_start_imports_no_heavy_library(args: list[str]) -> None:
    """`python -X importtime` shows every module imported; none of the heavy ones may be."""
    code = f"import sys; sys.argv = ['platform'] + {args!r}; from bootstrap.cli.main import main; main()"
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "bootstrap.cli.main" in imported  # the measurement works
    leaked = sorted(m for m in imported if m.split(".")[0] in HEAVY)
    assert leaked == []


def test_doctor_install_offline_says_what_to_install_by_hand(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No network here: the pinned download fails fast with a sentence and a manual fix."""
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    result = runner.invoke(cli, ["doctor", "--install"])
    assert result.exit_code == 1
    assert (
        "Error: Could not download k3d v5.9.0 from https://github.com/k3d-io/k3d/releases/download/v5.9.0/"
        in result.output
    )
    home = os.environ["PLATFORM_HOME"]
    text = " ".join(result.output.split())
    assert "Offline: download k3d-linux-amd64 (https://github.com/k3d-io/k3d/releases/" in text
    assert f"put it at {home}/bin/k3d (chmod +x)" in text


def test_doctor_table_names_each_failure_with_a_fix(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    result = runner.invoke(cli, ["doctor"])
    assert result.exit_code == 1
    rows = {
        line.split()[1]: line
        for line in result.output.splitlines()
        if line.startswith(("FAIL", "ok", "warn", "plan"))
    }
    # What `up` does itself is the plan, not a failure.
    assert rows["k3d"].startswith("plan") and "k3d is not installed" in rows["k3d"]
    assert rows["docker"].startswith("FAIL") and "socket does not exist" in rows["docker"]
    assert rows["kubectl"].startswith("warn")
    assert "1 check(s) would stop `platform up`" in result.output


def test_missing_tofu_offline_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No tofu anywhere and its release unreachable: one sentence naming both, and the fix."""
    from bootstrap import tools
    from bootstrap.stages.tofu import find_or_install
    from stacks.errors import PermanentError

    monkeypatch.setenv(tools.TEST_OVERRIDE, '{"base_url": "http://127.0.0.1:1"}')  # refused at once
    with pytest.raises(PermanentError) as caught:
        find_or_install("", {"PATH": str(tmp_path / "empty")})
    assert "neither `tofu` nor `terraform` is on PATH, and could not download tofu 1.6.2" in str(
        caught.value
    )
    assert "PLATFORM_TERRAFORM_BIN" in caught.value.hint


def test_status_of_a_platform_whose_up_failed_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    state = PlatformState(tmp_path / "home", "broken")
    state.update_stage("preflight", outcome="done", seconds=0.1)
    state.update_stage("cluster", outcome="failed", error="k3d failed", hint="fix it")
    result = runner.invoke(cli, ["status", "--name", "broken"])
    assert result.exit_code == 1, result.output
    assert "k3d failed" in result.output
    as_json = runner.invoke(cli, ["status", "--name", "broken", "-o", "json"])
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout.strip().splitlines()[-1])["ok"] is False
