"""`platform down`: remove a platform. Idempotent and fast.

k3d: deletes the cluster. existing: removes what the platform installed and nothing else
(stages that install things provide `remove`). Then the state directory goes, unless
--keep-state.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from bootstrap.cli.common import common_options, log_to_file, open_session, reported_errors


@click.command()
@common_options
@click.option(
    "--keep-state", is_flag=True, help="Keep ~/.platform/<name>/ (logs, keys) after removal."
)
def down(
    name: str | None,
    config_file: Path | None,
    output: str | None,
    verbose: int,
    quiet: bool,
    debug: bool,
    keep_state: bool,
) -> None:
    """Remove a platform: its cluster (k3d) or what it installed (existing)."""
    session = open_session(name, config_file, output, verbose, quiet, debug)
    from bootstrap.engines.base import engine_for
    from bootstrap.stages.base import StageContext
    from bootstrap.stages.teardown import teardown

    settings, state, terminal = session.settings, session.state, session.terminal
    if not state.exists():
        terminal.info(f"Platform {settings.name!r} does not exist; nothing to do.")
        terminal.result({"ok": True, "name": settings.name, "removed": []})
        return
    with reported_errors(session):
        with state.lock("down"), log_to_file(session, "down"):
            ctx = StageContext(
                settings=settings,
                state=state,
                progress=terminal,
                engine=engine_for(settings, state),
                log=logging.getLogger("platform.down"),
            )
            removed = teardown(ctx)
        for line in removed:
            terminal.info(f"  {line}")
        if not keep_state:
            state.remove()
        terminal.success(f"Platform {settings.name!r} is down.")
        terminal.result(
            {"ok": True, "name": settings.name, "removed": removed, "state_kept": keep_state}
        )
