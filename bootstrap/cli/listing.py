"""`platform list`: every platform under PLATFORM_HOME with its engine and state."""

from __future__ import annotations

import click

from bootstrap.cli.common import EXIT_USAGE
from bootstrap.cli.terminal import Terminal
from bootstrap.config import ConfigError, check_home, platform_home
from bootstrap.state import list_platforms


@click.command(name="list")
@click.option(
    "--output", "-o", type=click.Choice(["text", "json"]), default="text", help="Output format."
)
def list_platforms_command(output: str) -> None:
    """List the platforms on this machine."""
    terminal = Terminal(output=output)
    home = platform_home()
    try:
        check_home(home)
    except ConfigError as error:
        terminal.failure(str(error), error.hint)
        raise SystemExit(EXIT_USAGE) from None
    rows = []
    for state in list_platforms(home):
        data = state.load()
        stages = data.get("stages", {})
        failed = [n for n, r in stages.items() if r.get("outcome") in ("failed", "interrupted")]
        running = [n for n, r in stages.items() if r.get("outcome") == "running"]
        if failed:
            condition = f"stopped at {failed[0]}"
        elif running:
            condition = f"in progress or killed at {running[0]}"
        else:
            condition = "up" if stages else "new"
        engine = data.get("settings", {}).get("engine", "k3d")
        rows.append([state.name, engine, condition, str(data.get("updated", ""))])
    if not rows:
        terminal.info(f"No platforms under {home}. Create one with `platform up`.")
    else:
        terminal.table(["name", "engine", "state", "updated"], rows)
    terminal.result(
        {
            "platforms": [
                dict(zip(["name", "engine", "state", "updated"], r, strict=True)) for r in rows
            ]
        }
    )
