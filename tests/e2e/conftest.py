"""The e2e tier: the whole `platform up` (see tests/support/hostplatform.py)."""

from tests.support.hostplatform import DOMAIN, HostPlatform

__all__ = ["DOMAIN", "HostPlatform"]
