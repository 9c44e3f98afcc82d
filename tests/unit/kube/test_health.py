"""Health per kind from YAML fixtures in testdata/health (first line: `# expect: STATUS "part of message"`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from stacks.kube.health import Health, HealthStatus, health_of, worst

FIXTURES = sorted((Path(__file__).parent / "testdata" / "health").glob("*.yaml"))


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.stem for f in FIXTURES])
def test_health_fixture(fixture: Path) -> None:
    text = fixture.read_text()
    match = re.match(r'# expect: (\w+)(?: "([^"]*)")?', text)
    assert match, f"{fixture.name} has no expect line"
    expected, fragment = match.group(1), match.group(2)
    found = health_of(yaml.safe_load(text))
    if expected == "none":
        assert found is None
        return
    assert found is not None
    assert found.status == HealthStatus(expected), found
    if fragment:
        assert fragment in found.message, found.message


def test_worst_follows_argo_order() -> None:
    items = [
        Health(HealthStatus.HEALTHY),
        Health(HealthStatus.SUSPENDED),
        Health(HealthStatus.PROGRESSING, "p"),
    ]
    assert worst(items).status is HealthStatus.PROGRESSING
    assert worst([*items, Health(HealthStatus.DEGRADED, "d")]).message == "d"
    assert worst([]).status is HealthStatus.HEALTHY
