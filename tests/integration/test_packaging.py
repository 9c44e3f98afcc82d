"""`pip install .` must give a complete platform: the wheel carries the manifests, the
Terraform module and the GitOps template, not only the Python code."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_carries_manifests_and_the_terraform_module(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    wheel = next(tmp_path.glob("platform_gitops-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for tf in (ROOT / "terraform" / "vault").glob("*.tf"):
        assert f"bootstrap/assets/terraform/vault/{tf.name}" in names
    for component in ("reconciler", "secrets", "certs", "dns", "gitserver", "vault"):
        shipped = {
            n
            for n in names
            if n.startswith(f"stacks/{component}/manifests/") and n.endswith(".yaml")
        }
        assert shipped == {
            f"stacks/{component}/manifests/{p.name}"
            for p in (ROOT / "stacks" / component / "manifests").glob("*.yaml")
        }
