"""The pinned versions live in one place (bootstrap/pins.py): the README states them, the
tools and images read them, testenv runs them; and a platform without a pinned checksum
is refused with one sentence, never downloaded unverified."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bootstrap import pins
from bootstrap.images import K3D_PROXY_IMAGE, K3S_IMAGE, OPENBAO_IMAGE
from bootstrap.tools import K3D, TOFU, source_for
from stacks.errors import PermanentError
from testenv import catalog

README = Path(__file__).resolve().parents[3] / "README.md"


def readme_pins() -> dict[str, tuple[str, str]]:
    """The 'Pinned versions' table: what -> (version, downloaded for)."""
    section = README.read_text().split("## Pinned versions", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| ([^|]+) \| ([^|]+) \| ([^|]+) \|$", section, re.MULTILINE)
    return {what.strip(): (version.strip(), where.strip()) for what, version, where in rows[1:]}


def test_the_readme_states_the_pinned_versions_and_platforms() -> None:
    assert readme_pins() == {
        "k3d": (pins.K3D_VERSION, ", ".join(K3D.supported())),
        "OpenTofu": (pins.TOFU_VERSION, ", ".join(TOFU.supported())),
        "k3s": (pins.K3S_VERSION, "(image)"),
        "OpenBao": (pins.OPENBAO_VERSION, "(image)"),
        "Helm": (
            pins.HELM_VERSION,
            f"{_platforms(pins.HELM_SHA256)}(component image; no checksum pinned)"
            if not pins.HELM_SHA256
            else f"{_platforms(pins.HELM_SHA256)} (component image)",
        ),
        "Kustomize": (
            pins.KUSTOMIZE_VERSION,
            f"{_platforms(pins.KUSTOMIZE_SHA256)} (component image)",
        ),
    }


def _platforms(sums: dict[tuple[str, str], str]) -> str:
    return ", ".join(f"{system}/{arch}" for system, arch in sorted(sums))


def test_code_and_tests_read_the_same_pins() -> None:
    assert K3D.version == pins.K3D_VERSION and TOFU.version == pins.TOFU_VERSION
    assert K3S_IMAGE.endswith(pins.K3S_VERSION) and OPENBAO_IMAGE.endswith(pins.OPENBAO_VERSION)
    assert K3D_PROXY_IMAGE.endswith(pins.K3D_VERSION.lstrip("v"))
    assert catalog.K3D_VERSION == pins.K3D_VERSION
    assert catalog.TOFU_VERSION == "v" + pins.TOFU_VERSION
    assert catalog.OPENBAO_VERSION == pins.OPENBAO_VERSION
    assert catalog.HELM_VERSION == pins.HELM_VERSION
    assert catalog.KUSTOMIZE_VERSION == pins.KUSTOMIZE_VERSION


def test_every_pinned_checksum_is_a_sha256() -> None:
    for sums in (pins.K3D_SHA256, pins.TOFU_SHA256, pins.HELM_SHA256, pins.KUSTOMIZE_SHA256):
        for checksum in sums.values():
            assert re.fullmatch(r"[0-9a-f]{64}", checksum)


def test_the_official_release_file_for_each_platform() -> None:
    source = source_for(TOFU, "darwin", "arm64")
    assert source.url == (
        "https://github.com/opentofu/opentofu/releases/download/v1.6.2/tofu_1.6.2_darwin_arm64.zip"
    )
    assert source.sha256 == pins.TOFU_SHA256[("darwin", "arm64")]
    assert source_for(K3D, "linux", "arm64").asset == "k3d-linux-arm64"


@pytest.mark.parametrize(
    ("tool", "system", "arch"), [(TOFU, "linux", "arm64"), (K3D, "windows", "amd64")]
)
def test_a_platform_without_a_pinned_checksum_is_refused_in_one_sentence(
    tool: object, system: str, arch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLATFORM_TEST_DOWNLOADS", raising=False)
    with pytest.raises(PermanentError) as refused:
        source_for(tool, system, arch)  # type: ignore[arg-type]
    supported = ", ".join(tool.supported())  # type: ignore[attr-defined]
    assert str(refused.value).endswith(
        f"only for {supported} (the platforms whose release checksum it pins), not for {system}/{arch}"
    )
    assert "install" in refused.value.hint and "~/.platform/bin" not in str(refused.value)
