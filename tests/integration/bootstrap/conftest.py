"""The bootstrap tests run `platform up` for real, every stage included: each test that
asks for `platform_env` gets the whole host platform (tests/support/hostplatform.py).
The cluster is shared by the session, so what a test's platform leaves in it is removed
afterwards with `platform down`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.cli import run_platform
from tests.support.hostplatform import HostPlatform


@pytest.fixture
def platform_env(host_platform: HostPlatform) -> Iterator[HostPlatform]:
    yield host_platform
    host_platform.stop_components()
    run_platform("down", timeout=300)
