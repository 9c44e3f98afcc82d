"""Stage `tools`: get what `platform up` needs on this machine, so that `pip install .`
then `platform up` is enough.

- k3d (default engine) and OpenTofu (the terraform stage), when missing: downloaded from
  their pinned releases into ~/.platform/bin and verified (bootstrap/tools.py).
- The component image, when Docker lacks this version's build: built as
  `platform image build` builds it (bootstrap/docker/build.py), on `image.base`.
  With `--engine existing` only when `image.build` is `yes` (a cluster on this machine's
  Docker): a remote cluster cannot use an image built here.

Runs after preflight and before the cluster, which needs both. `plan()` names each
download and the build; preflight and `platform doctor` show the same plan
(`planned_steps`) instead of failing on a missing k3d or image.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from bootstrap.config import Settings
from bootstrap.engines.k3d import find_k3d
from bootstrap.images import COMPONENT_BASE_IMAGE, COMPONENT_IMAGE
from bootstrap.stages.base import CheckResult, StageContext
from bootstrap.tools import K3D, TOFU, Tool, install, tools_dir
from stacks.errors import PlatformError

MB = 1000 * 1000


@dataclass(frozen=True)
class Step:
    kind: str  # "download" | "build"
    text: str  # "download k3d v5.9.0 into ~/.platform/bin"
    tool: Tool | None = None
    reason: str = ""


def base_image(settings: Settings) -> str:
    return settings.image.base or COMPONENT_BASE_IMAGE


def wants_image(settings: Settings) -> bool:
    if settings.image.build == "no":
        return False
    return settings.engine == "k3d" or settings.image.build == "yes"


def tofu_missing(settings: Settings) -> bool:
    """No tofu/terraform the terraform stage would find (a configured one is the user's)."""
    if settings.terraform.binary or os.environ.get("PLATFORM_TERRAFORM_BIN"):
        return False
    if any(shutil.which(name) for name in ("tofu", "terraform")):
        return False
    return not (tools_dir() / "tofu").is_file()


def download_steps(settings: Settings) -> list[Step]:
    steps = []
    if settings.engine == "k3d" and find_k3d() is None:
        steps.append(Step("download", f"download {K3D.describe()} into {tools_dir()}", K3D))
    if tofu_missing(settings):
        steps.append(Step("download", f"download OpenTofu {TOFU.version} into {tools_dir()}", TOFU))
    return steps


def image_step(settings: Settings) -> Step | None:
    """The build, when Docker lacks this version's image (Docker unreachable: preflight's
    or the cluster's concern; then the build is planned and tried)."""
    if not wants_image(settings):
        return None
    from bootstrap.docker.build import build_needed

    try:
        reason = build_needed(COMPONENT_IMAGE)
    except PlatformError as error:
        reason = str(error)
    if not reason:
        return None
    return Step(
        "build",
        f"build the component image {COMPONENT_IMAGE} on {base_image(settings)}",
        reason=reason,
    )


def planned_steps(settings: Settings) -> list[Step]:
    steps = download_steps(settings)
    image = image_step(settings)
    return [*steps, image] if image is not None else steps


class _Throttled:
    """Download progress as step messages with a text bar, every 5% (a spinner line on a
    terminal, a few plain lines in CI logs)."""

    def __init__(self, ctx: StageContext, stage: str, what: str) -> None:
        self.ctx, self.stage, self.what = ctx, stage, what
        self.shown = -1

    def __call__(self, received: int, total: int | None) -> None:
        self.ctx.checkpoint()  # Ctrl-C stops the download here, and its partial file goes
        if total:
            percent = min(100, received * 100 // total)
            if percent // 5 == self.shown // 5 and percent != 100:
                return
            self.shown = percent
            bar = "#" * (percent // 5) + "-" * (20 - percent // 5)
            self.ctx.progress.step(
                self.stage,
                f"downloading {self.what} [{bar}] {received / MB:.1f}/{total / MB:.1f} MB",
            )
        elif received // (10 * MB) != self.shown:
            self.shown = received // (10 * MB)
            self.ctx.progress.step(self.stage, f"downloading {self.what}: {received / MB:.1f} MB")


class ToolsStage:
    name = "tools"
    description = "get k3d, OpenTofu and the component image when missing"
    requires: tuple[str, ...] = ("preflight",)

    def timeout(self, ctx: StageContext) -> float:
        # A cold image build (pip wheel of every dependency, apt for git) takes minutes.
        return max(ctx.settings.stage_timeout, 900.0)

    def check(self, ctx: StageContext) -> CheckResult:
        missing = planned_steps(ctx.settings)
        if missing:
            return CheckResult(False, "; ".join(s.text for s in missing))
        return CheckResult(True, "tools and component image present")

    def plan(self, ctx: StageContext) -> list[str]:
        return [
            s.text + (f" ({s.reason})" if s.reason else "") for s in planned_steps(ctx.settings)
        ] or ["nothing: the tools and the component image are here"]

    def run(self, ctx: StageContext) -> str:
        done: list[str] = []
        for step in download_steps(ctx.settings):
            assert step.tool is not None
            ctx.checkpoint()
            ctx.progress.step(self.name, f"downloading {step.tool.describe()}")
            path = install(step.tool, _Throttled(ctx, self.name, step.tool.describe()))
            ctx.progress.note(
                self.name, f"installed {step.tool.describe()} at {path} (SHA-256 verified)"
            )
            done.append(f"downloaded {step.tool.describe()}")
        ctx.checkpoint()
        image = image_step(ctx.settings)
        if image is not None:
            from bootstrap.docker.build import build_component_image

            base = base_image(ctx.settings)
            ctx.progress.step(self.name, f"building {COMPONENT_IMAGE} on {base} ({image.reason})")
            report = build_component_image(
                COMPONENT_IMAGE,
                base=ctx.settings.image.base or None,
                on_line=lambda line: self._build_line(ctx, line),
            )
            done.append(f"built {report.tag} ({report.size_bytes / MB:.0f} MB)")
        return "; ".join(done) or "tools and component image already present"

    def _build_line(self, ctx: StageContext, line: str) -> None:
        """The build's steps as progress; every other line to the log only."""
        if line.startswith(("Step ", "pip wheel", "pulling ")):
            ctx.progress.step(self.name, f"build: {line[:160]}")
        else:
            ctx.log.debug("image build: %s", line)
