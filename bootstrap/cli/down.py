"""`platform down`: remove a platform. Idempotent and fast.

k3d: deletes the cluster. existing: removes what the platform installed and nothing else
(stages that install things provide `remove`). Then the state directory goes, unless
--keep-state.
"""

from __future__ import annotations

import click

from bootstrap.cli.common import (
    CommonArgs,
    common_options,
    log_to_file,
    open_session,
    reported_errors,
    stage_context,
)


@click.command()
@common_options
@click.option(
    "--keep-state", is_flag=True, help="Keep ~/.platform/<name>/ (logs, keys) after removal."
)
def down(
    common: CommonArgs,
    keep_state: bool,
) -> None:
    """Remove a platform: its cluster (k3d) or what it installed (existing)."""
    session = open_session(common)
    from bootstrap.stages.teardown import teardown

    settings, state, terminal = session.settings, session.state, session.terminal
    if not state.exists():
        terminal.info(f"Platform {settings.name!r} does not exist; nothing to do.")
        terminal.result({"ok": True, "name": settings.name, "removed": []})
        return
    with reported_errors(session):
        with state.lock("down"), log_to_file(session, "down"):
            ctx = stage_context(session, "down")
            removed = teardown(ctx)
        for line in removed:
            terminal.info(f"  {line}")
        if not keep_state:
            state.remove()
        terminal.success(f"Platform {settings.name!r} is down.")
        terminal.result(
            {"ok": True, "name": settings.name, "removed": removed, "state_kept": keep_state}
        )
