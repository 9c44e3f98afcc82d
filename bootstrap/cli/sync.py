"""`platform sync APP`: sync an Application now (the refresh annotation), and wait for it.

Works with any sync policy: without `automated` it is the only way a change is applied;
with it, it skips the wait for the next interval or push. Heavy imports stay inside.
"""

from __future__ import annotations

import click

from bootstrap.cli.apps import cluster_options, kube_client
from bootstrap.cli.common import CommonArgs, common_options, open_session, reported_errors


@click.command()
@common_options
@cluster_options
@click.argument("app")
@click.option(
    "--wait/--no-wait",
    default=True,
    help="Wait until the reconciler has handled it [default: wait].",
)
@click.option(
    "--timeout",
    type=float,
    default=120.0,
    envvar="PLATFORM_SYNC_TIMEOUT",
    help="Seconds to wait [env PLATFORM_SYNC_TIMEOUT].",
)
def sync(
    common: CommonArgs,
    kubeconfig: str | None,
    context: str | None,
    app_namespace: str | None,
    app: str,
    wait: bool,
    timeout: float,
) -> None:
    """Fetch and apply APP's source now."""
    session = open_session(common)
    with reported_errors(session):
        from stacks.kube.objects import condition_of
        from stacks.reconciler.api import AppKey
        from stacks.reconciler.inspect import find_app, request_sync, wait_handled

        client = kube_client(session, kubeconfig, context)
        key = AppKey.of(find_app(client, app, app_namespace))
        token = request_sync(client, key)
        if not wait:
            session.terminal.info(f"Asked the reconciler to sync '{key}'.")
            session.terminal.result({"ok": True, "application": str(key), "requested": token})
            return
        obj = wait_handled(client, key, token, timeout)
        status = obj.get("status") or {}
        ready = condition_of(obj, "Ready") or {}
        sync_status = (status.get("sync") or {}).get("status", "Unknown")
        health = (status.get("health") or {}).get("status", "Unknown")
        revision = str((status.get("sync") or {}).get("revision", ""))[:12]
        line = f"'{key}' {sync_status} and {health} at {revision}: {ready.get('message', '')}"
        ok = ready.get("status") != "False"
        if ok:
            session.terminal.success(line)
        else:
            session.terminal.failure(line, "fix what the message names and push, then sync again")
        session.terminal.result(
            {
                "ok": ok,
                "application": str(key),
                "sync": sync_status,
                "health": health,
                "revision": revision,
                "message": ready.get("message", ""),
            }
        )
        if not ok:
            raise SystemExit(1)
