"""`platform diff APP`: what a sync of APP would change, as unified diffs (exit 1 if any).

Fetches APP's source on this machine (its repoURL must be reachable from here), renders
it, and asks the API server for a server-side dry run of every object; objects that
would be pruned are listed too. Heavy imports stay inside the command body.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from bootstrap.cli.apps import cluster_options, kube_client
from bootstrap.cli.common import CommonArgs, common_options, open_session, reported_errors


@click.command()
@common_options
@cluster_options
@click.argument("app")
def diff(
    common: CommonArgs,
    kubeconfig: str | None,
    context: str | None,
    app_namespace: str | None,
    app: str,
) -> None:
    """Show what syncing APP would create, change or prune."""
    session = open_session(common)
    with reported_errors(session):
        from stacks.reconciler.inspect import HOOK_ACTIONS, diff_app, find_app

        client = kube_client(session, kubeconfig, context)
        obj = find_app(client, app, app_namespace)
        cache = (
            Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
            / "platform"
            / "diff-git"
        )
        from bootstrap.gitops.source import write_git_credentials

        # The platform's repository names no Secret: log in as the cluster does.
        with tempfile.TemporaryDirectory(prefix="platform-diff-") as private:
            login = write_git_credentials(session.settings, session.state, Path(private))
            found = diff_app(client, obj, cache, login)
        diffs = [d for d in found if d.action not in HOOK_ACTIONS]
        hooks = [d for d in found if d.action in HOOK_ACTIONS]
        if not diffs:
            session.terminal.success(f"'{app}' is in sync with git: a sync would change nothing.")
        for item in hooks:  # hooks are not changes: a sync runs them (issue 21)
            if session.terminal.mode == "json":
                session.terminal.emit(
                    "hook", object=str(item.ref), action=item.action, diff=item.diff
                )
            else:
                session.terminal.info(
                    f"--- {item.action}: {item.ref}: {item.diff.lstrip('# ').rstrip()}"
                )
        for item in diffs:
            if session.terminal.mode == "json":
                session.terminal.emit(
                    "diff", object=str(item.ref), action=item.action, diff=item.diff
                )
            else:
                session.terminal.info(f"=== {item.action}: {item.ref}\n{item.diff.rstrip()}")
        session.terminal.result({"ok": not diffs, "changes": len(diffs)})
        if diffs:
            raise SystemExit(1)
