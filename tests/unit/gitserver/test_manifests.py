"""manifests/: parse, run `platform run gitserver`, and reference Secrets only by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from stacks.gitserver.limits import SCRATCH_HEADROOM, SCRATCH_SIZE, parse_size
from stacks.gitserver.program import parse_args

MANIFESTS = Path(__file__).resolve().parents[3] / "stacks" / "gitserver" / "manifests"


def load() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_kinds_and_namespace() -> None:
    docs = load()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["Deployment", "Ingress", "Namespace", "PersistentVolumeClaim", "Service"]
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "platform-git"
    assert "Secret" not in kinds  # generated at bootstrap, never committed


def test_deployment_runs_the_program_with_valid_flags() -> None:
    deployment = next(d for d in load() if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "${COMPONENT_IMAGE}"
    assert container["command"] == ["platform", "run", "gitserver"]
    args = parse_args(container["args"])
    assert args.create_repo == ["gitops"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(args.credentials.parent) in mounts
    assert str(args.webhook_secret_file.parent) in mounts
    assert str(args.data_dir) in mounts
    secrets = {
        v["secret"]["secretName"]
        for v in deployment["spec"]["template"]["spec"]["volumes"]
        if "secret" in v
    }
    assert secrets == {"platform-gitserver-credentials", "platform-gitserver-webhook"}


def test_ingress_host() -> None:
    ingress = next(d for d in load() if d["kind"] == "Ingress")
    assert ingress["spec"]["rules"][0]["host"] == "git.${DOMAIN}"


def test_body_limit_and_scratch_space_agree() -> None:
    """/tmp (where request bodies are buffered) is an emptyDir: writing more than its
    sizeLimit evicts the pod. Its size is limits.SCRATCH_SIZE, and the server's limit on
    all bodies together leaves the headroom free."""
    spec = next(d for d in load() if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    container = spec["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    tmp_mount = next(m for m in container["volumeMounts"] if m["mountPath"] == env["TMPDIR"])
    volume = next(v for v in spec["volumes"] if v["name"] == tmp_mount["name"])
    assert parse_size(volume["emptyDir"]["sizeLimit"]) == SCRATCH_SIZE
    args = parse_args(container["args"])
    assert args.max_body_size + SCRATCH_HEADROOM <= SCRATCH_SIZE
