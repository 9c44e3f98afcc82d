"""Teardown for `platform down`: undo the stages in reverse, then let the engine go.

A stage that installs something into the cluster may define `remove(ctx) -> str`; it is
called newest stage first. A stage whose components change objects they do not own (the
DNS stub's entries in k3s's `coredns-custom`) may define `remove_leftovers(ctx) -> str`,
called in a second pass once every stage's `remove` has run, so no component is left to
write them back. For the k3d engine the cluster itself is deleted at the end, which
removes everything in it at once, so per-stage removal is skipped there.
"""

from __future__ import annotations

from bootstrap import hostsfile
from bootstrap.stages.base import StageContext
from bootstrap.stages.registry import all_stages


def teardown(ctx: StageContext) -> list[str]:
    removed: list[str] = []
    if not ctx.engine.owns_cluster():
        for stage in reversed(all_stages()):
            remove = getattr(stage, "remove", None)
            if remove is not None:
                ctx.progress.step("down", f"removing what stage {stage.name} installed")
                removed.append(remove(ctx))
        for stage in reversed(all_stages()):
            leftovers = getattr(stage, "remove_leftovers", None)
            if leftovers is not None:
                ctx.progress.step("down", f"removing what stage {stage.name}'s components left")
                removed.append(leftovers(ctx))
    removed.append(ctx.engine.destroy(lambda message: ctx.progress.step("down", message)))
    if hostsfile.uninstall(ctx.settings.name):
        removed.append(f"removed the platform's names from {hostsfile.hosts_path()}")
    return [line for line in removed if line]
