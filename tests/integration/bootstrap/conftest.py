"""The bootstrap tests run `platform up` for real, every stage included: the tests that
ask for `platform_env` get the whole host platform (tests/support/hostplatform.py),
which is taken out of the shared cluster again afterwards."""

from __future__ import annotations

import pytest

from tests.support.hostplatform import HostPlatform


@pytest.fixture
def platform_env(host_platform: HostPlatform) -> HostPlatform:
    return host_platform
