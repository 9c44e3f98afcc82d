"""Bad input is bad usage, said once on stderr in one sentence naming what is wrong: a
PLATFORM_HOME that is a file, a kubeconfig of random bytes or of the wrong shape, a domain
that is not a DNS name, a section given a value, a value of the wrong type; exit 2 for
every invalid flag or setting, and errors never on stdout, where `> /dev/null` hides them."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bootstrap.cli.main import cli


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("PLATFORM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def _said_once_on_stderr(result: Result, *fragments: str) -> None:
    assert "Traceback" not in result.output and "this is a bug" not in result.output
    assert "Error: " not in result.stdout, result.stdout
    assert result.stderr.count("Error: ") == 1, result.stderr
    assert "To fix: " in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.mark.parametrize("command", [["status"], ["up"], ["list"], ["down"]])
def test_a_platform_home_that_is_a_file(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    home = tmp_path / "not-a-dir"
    home.write_text("")
    monkeypatch.setenv("PLATFORM_HOME", str(home))
    result = runner.invoke(cli, command)
    assert result.exit_code == 2, result.output
    _said_once_on_stderr(result, f"The platform home {home} (PLATFORM_HOME) is not a directory")


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (bytes(range(256)) * 4, "is not YAML"),
        (b"clusters: 5\n", "has `clusters` as a number, not a list"),
        (b"- just\n- a list\n", "holds a list, not a kubeconfig mapping"),
        (b"clusters:\n- name: x\n  cluster: 5\n", "has a malformed entry clusters[0]"),
    ],
)
def test_a_kubeconfig_that_is_not_one_is_named(
    runner: CliRunner, tmp_path: Path, content: bytes, says: str
) -> None:
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_bytes(content)
    result = runner.invoke(
        cli, ["up", "--only", "cluster", "--engine", "existing", "--kubeconfig", str(kubeconfig)]
    )
    assert result.exit_code == 2, result.output  # bad usage, as any invalid input
    _said_once_on_stderr(result, f"The kubeconfig {kubeconfig} {says}")
    apps = runner.invoke(cli, ["apps", "--kubeconfig", str(kubeconfig)])
    assert apps.exit_code == 2, apps.output
    _said_once_on_stderr(apps, f"The kubeconfig {kubeconfig} {says}")


@pytest.mark.parametrize("flag", ["my domain", "bad_domain.test", "-x.test", "a..b", "é.test"])
def test_a_domain_that_is_not_a_dns_name_is_refused(runner: CliRunner, flag: str) -> None:
    result = runner.invoke(cli, ["up", "--domain", flag])
    assert result.exit_code == 2, result.output
    _said_once_on_stderr(result, f"The domain {flag!r} from --domain is not a DNS name")


def test_a_list_as_the_domain_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "platform.yaml").write_text("domain: [a.test, b.test]\n")
    result = runner.invoke(cli, ["config"])
    assert result.exit_code == 2, result.output
    _said_once_on_stderr(
        result, "domain from platform.yaml is invalid: a list is not a single value"
    )


def test_a_good_domain_is_kept_lowercase(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["config", "--output", "json"])
    assert result.exit_code == 0
    from bootstrap.config import load_settings

    assert load_settings(flags={"domain": "Dev.Example.TEST"}).domain == "dev.example.test"


def test_a_section_given_a_value_is_named_as_a_section(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "platform.yaml").write_text("k3d: 5\n")
    result = runner.invoke(cli, ["config"])
    assert result.exit_code == 2, result.output
    _said_once_on_stderr(result, "gives k3d 5, but k3d is a section of settings (servers, agents")
    assert "unknown setting" not in result.output


def test_a_wrong_type_says_which_in_plain_english(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "platform.yaml").write_text("k3d:\n  agents: many\n")
    result = runner.invoke(cli, ["config"])
    assert result.exit_code == 2, result.output
    _said_once_on_stderr(result, "Give k3d.agents an integer value.")


@pytest.mark.parametrize(
    "args",
    [
        ["up", "--name", "Bad_Name"],
        ["up", "--engine", "bogus"],
        ["status", "--name", "-x"],
        ["up", "--only", "nope"],
        ["up", "--timeout", "soon"],
    ],
)
def test_every_invalid_flag_value_exits_2(runner: CliRunner, args: list[str]) -> None:
    result = runner.invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == "", result.stdout
