"""`platform ui`: a local dashboard for one platform, on 127.0.0.1, until Ctrl-C.

Thin: the server, the pages and the live feed are bootstrap/ui/. This command opens the
session, says on the terminal whether the platform exists and answers (the page says it
too), prints the address with its access token (the token is the only key to the page:
it is printed once, here, never logged) and opens the browser unless --no-open.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import click

from bootstrap.cli.common import (
    CommonArgs,
    common_options,
    open_session,
    reported_errors,
    sigterm_as_interrupt,
)


@click.command()
@common_options
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    envvar="PLATFORM_UI_PORT",
    help="Port on 127.0.0.1 [env PLATFORM_UI_PORT; default: a free one].",
)
@click.option(
    "--open/--no-open",
    "open_browser",
    default=True,
    envvar="PLATFORM_UI_OPEN",
    help="Open the browser [env PLATFORM_UI_OPEN; default: open].",
)
def ui(common: CommonArgs, port: int, open_browser: bool) -> None:
    """Serve a dashboard of the platform on 127.0.0.1 (stages, Applications, diff, sync)."""
    session = open_session(common)
    from bootstrap.engines.choose import engine_for
    from bootstrap.ui.readers import Platform
    from bootstrap.ui.site import serve

    settings, terminal = session.settings, session.terminal
    sigterm_as_interrupt()  # a stop from a script or CI closes the server the same way
    with reported_errors(session):
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "platform"
        platform = Platform(settings, session.state, engine_for(settings, session.state), cache)
        if not platform.exists():
            terminal.warn(
                "ui",
                f"Platform {settings.name!r} does not exist: the dashboard says so until "
                f"`platform up --name {settings.name}` creates it.",
            )
        else:
            ready, detail = platform.cluster()
            if ready:
                terminal.info(f"cluster: {detail}")
            else:
                terminal.warn(
                    "ui",
                    f"Platform {settings.name!r} is down: its cluster does not answer ({detail}). "
                    "The dashboard shows what was recorded and updates when it is back.",
                )
        try:
            server = serve(platform, port)
        except OSError as error:
            from stacks.errors import PermanentError

            raise PermanentError(
                f"cannot listen on 127.0.0.1:{port}: {error.strerror or error}",
                hint="choose another port with --port, or 0 for any free one",
            ) from error
        if terminal.mode == "json":
            terminal.emit("serving", url=server.url)
        else:
            click.echo(f"Dashboard of platform {settings.name!r}: {server.url}")
            click.echo("Only this address (with its token) opens it; press Ctrl-C to stop.")
        if open_browser:
            import webbrowser

            with contextlib.suppress(webbrowser.Error):
                webbrowser.open(server.url)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
            platform.close()
        terminal.result({"ok": True, "url": f"http://127.0.0.1:{server.port}/"})
