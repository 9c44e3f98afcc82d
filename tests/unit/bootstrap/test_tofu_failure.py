"""How a failed tofu run is classified: Vault's brief unavailability is transient (the
runner retries the stage), anything else stops with the output's tail, redacted."""

from __future__ import annotations

from bootstrap.stages.tofu import failure
from stacks import redact
from stacks.errors import PermanentError, TransientError

KV_UPGRADE = """
Error: error writing to Vault: Error making API request.

URL: PUT http://127.0.0.1:8200/v1/secret/data/demo/app
Code: 400. Errors:

* Upgrading from non-versioned to versioned data. This backend will be unavailable for a brief period and will resume service shortly.
"""


def test_a_kv_mount_still_upgrading_is_transient() -> None:
    error = failure("tofu", "apply", 1, "", KV_UPGRADE)
    assert isinstance(error, TransientError)
    assert "`tofu apply` failed (exit 1)" in str(error)
    assert "retrying" in error.hint


def test_other_failures_are_permanent_and_redacted() -> None:
    redact.register("s3cr3t-token-value")
    error = failure("tofu", "apply", 1, "", "Error: permission denied for s3cr3t-token-value")
    assert isinstance(error, PermanentError)
    assert "s3cr3t-token-value" not in str(error)
    assert "permission denied" in str(error)
