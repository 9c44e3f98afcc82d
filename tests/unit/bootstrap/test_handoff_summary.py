"""The summary `platform up` prints links only to what exists: a platform seeded from a
user's template (`--template`) without the demo app gets no demo link, and a link left
from an earlier run on the built-in template is taken back."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootstrap.stages.handoff import record_summary
from tests.support.stages import stage_context


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATFORM_HOME", str(tmp_path))


def test_demo_link_when_the_demo_app_exists() -> None:
    ctx = stage_context({"PLATFORM_DOMAIN": "ws1.test"})
    record_summary(ctx, ["root", "demo", "vault"])
    outputs = ctx.state.outputs()
    assert outputs["demo_url"] == "https://demo.ws1.test"
    assert "apps/demo" in outputs["next"]


def test_no_demo_link_without_the_demo_app_and_an_old_one_is_removed() -> None:
    ctx = stage_context({"PLATFORM_DOMAIN": "ws1.test"})
    record_summary(ctx, ["root", "demo"])
    record_summary(ctx, ["root", "vault", "shop"])
    outputs = ctx.state.outputs()
    assert "demo_url" not in outputs
    assert "apps/demo" not in outputs["next"]
    assert outputs["credentials"]
