"""`platform hosts`: the host-side names of the platform, printed, or written into a marked
block of /etc/hosts with explicit consent (`--write`); `platform down` removes the block."""

from __future__ import annotations

import click

from bootstrap.cli.common import CommonArgs, common_options, open_session, reported_errors
from bootstrap.hostsfile import hosts_path, install, platform_names


@click.command()
@common_options
@click.option(
    "--write", is_flag=True, help="Write the entries into a marked block of the hosts file."
)
@click.option(
    "--address", default="127.0.0.1", show_default=True, help="Where the names point (the ingress)."
)
def hosts(common: CommonArgs, write: bool, address: str) -> None:
    """Print the platform's host names (git, vault, demo) for the hosts file.

    Names under `localdev.me` already resolve to 127.0.0.1 through public DNS; the hosts
    file makes them work offline and for other domains.
    """
    session = open_session(common)
    settings, terminal = session.settings, session.terminal
    names = platform_names(settings.domain)
    with reported_errors(session):
        line = f"{address} {' '.join(names)}"
        if not write:
            terminal.info(line)
            terminal.detail(f"add it to {hosts_path()}, or run `platform hosts --write`")
            terminal.result({"ok": True, "line": line, "written": False})
            return
        path = install(settings.name, address, names)
        terminal.success(
            f"Wrote the platform's names into {path} (removed again by `platform down`)."
        )
        terminal.result({"ok": True, "line": line, "written": True, "file": str(path)})
