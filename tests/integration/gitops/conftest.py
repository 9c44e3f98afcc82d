"""Fixtures for the GitOps repository tests: stage contexts whose git settings point at
the real git server process (`git_server`), password files written 0600 like a user
would, and debug logging captured without the redacting filter (so a leak shows).
Helpers live in tests/support/stages.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bootstrap.stages.base import StageContext
from tests.support.stages import (
    debug_log as capture_debug_log,
)
from tests.support.stages import (
    external_git_env,
    progress_lines,
    secret_file,
    stage_context,
    watching_argv,
)

__all__ = ["MakeContext", "external_git_env", "progress_lines", "secret_file", "watching_argv"]

MakeContext = Callable[..., StageContext]


@pytest.fixture
def debug_log(tmp_path: Path) -> Iterator[Path]:
    with capture_debug_log(tmp_path / "debug.log", loggers=("git", "git.cmd")) as path:
        yield path


@pytest.fixture
def make_context(tmp_path: Path, debug_log: Path) -> MakeContext:
    def make(kubeconfig: Path | None = None, name: str = "gt", **env: str) -> StageContext:
        return stage_context(
            {"PLATFORM_NAME": name, "PLATFORM_DOMAIN": "gitops.test", **env}, kubeconfig
        )

    return make
