"""Find a testenv binary, or fail (in CI) / skip (on a developer machine) with the fix.

The rule from the design: in CI a missing test binary fails the run, never a silent skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from testenv import locate
from testenv.catalog import override_variable


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_binary(name: str) -> Path:
    path = locate(name)
    if path is not None:
        return path
    message = (
        f"test binary {name!r} is missing: run `make testenv` "
        f"or set {override_variable(name)}=/path/to/{name}"
    )
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
