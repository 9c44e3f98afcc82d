"""Pure parts of the Vault work: key formats, tofu binary choice and plan parsing,
manifest rendering. No I/O beyond tmp files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bootstrap.stages.tofu import PLAN_LINE, PlanResult, find_binary
from bootstrap.stages.vault import render_manifests
from stacks.errors import PermanentError
from stacks.redact import redact
from stacks.vault.keys import InitKeys


def test_keys_round_trip_through_file_and_secret_and_are_registered() -> None:
    keys = InitKeys(("a1" * 32, "b2" * 32, "c3" * 32), "s.rootrootroot", 2)
    assert InitKeys.from_json(keys.to_json(), "f") == keys
    assert InitKeys.from_secret_data(keys.to_secret_data(), "s") == keys
    assert "rootroot" not in repr(keys) and "a1a1" not in repr(keys)
    assert redact("token s.rootrootroot") == "token ***"


def test_keys_read_bao_operator_init_output() -> None:
    text = json.dumps(
        {
            "unseal_keys_b64": ["x"],
            "unseal_keys_hex": ["ab" * 32],
            "unseal_threshold": 1,
            "root_token": "s.abcdef",
        }
    )
    keys = InitKeys.from_json(text, "init.json")
    assert keys.keys == ("ab" * 32,) and keys.threshold == 1


@pytest.mark.parametrize("text", ["{", "[]", '{"root_token": "x"}', '{"unseal_keys_hex": []}'])
def test_bad_key_files_are_permanent_errors_naming_the_file(text: str) -> None:
    with pytest.raises(PermanentError) as caught:
        InitKeys.from_json(text, "/tmp/k.json")
    assert "/tmp/k.json" in str(caught.value)


def test_binary_from_setting_env_or_path(tmp_path: Path) -> None:
    tofu = tmp_path / "tofu"
    tofu.write_text("#!/bin/sh\n")
    tofu.chmod(0o755)
    assert find_binary(str(tofu), {}) == str(tofu)
    assert find_binary("", {"PLATFORM_TERRAFORM_BIN": str(tofu)}) == str(tofu)
    assert find_binary("", {"PATH": str(tmp_path)}) == str(tofu)
    with pytest.raises(PermanentError, match="neither `tofu` nor `terraform`"):
        find_binary("", {"PATH": str(tmp_path / "empty")})


def test_plan_summary_line() -> None:
    match = PLAN_LINE.search("...\nPlan: 10 to add, 1 to change, 0 to destroy.\n")
    assert match is not None and match.groups() == ("10", "1", "0")
    assert PlanResult(False).summary() == "no changes"
    assert PlanResult(True, 1, 2, 3).summary() == "1 to add, 2 to change, 3 to destroy"


def test_manifests_render_with_domain_and_images() -> None:
    objects = render_manifests("example.test", "openbao:x", "components:y")
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("StatefulSet", "openbao") in kinds and ("Deployment", "vault-unsealer") in kinds
    ingress = next(o for o in objects if o["kind"] == "Ingress")
    assert ingress["spec"]["rules"][0]["host"] == "vault.example.test"
    sts = next(o for o in objects if o["kind"] == "StatefulSet")
    assert sts["spec"]["template"]["spec"]["containers"][0]["image"] == "openbao:x"
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    unsealer = next(o for o in objects if o["kind"] == "Deployment")
    assert unsealer["spec"]["template"]["spec"]["containers"][0]["image"] == "components:y"
