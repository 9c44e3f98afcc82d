"""`platform vault status|unseal|credentials|ui`: the platform's Vault by hand.

Thin: the work is in bootstrap.stages.vault (stored keys, tokens), bootstrap.vault_access
(the address) and stacks.vault.api (the HTTP calls). `credentials` prints
the people's login; the root token only with --show-root-token, after a warning.
"""

from __future__ import annotations

import contextlib
import json
import threading

import click

from bootstrap.cli.common import (
    CommonArgs,
    Session,
    common_options,
    open_session,
    reported_errors,
    stage_context,
)


@click.group()
def vault() -> None:
    """Vault (OpenBao) of a platform: status, unseal, credentials, UI address."""


@vault.command()
@common_options
def status(
    common: CommonArgs,
) -> None:
    """Show whether Vault is initialised and sealed, and its version."""
    session = open_session(common)
    from stacks.vault.api import VaultApi

    with reported_errors(session):
        address = _address(session)
        state = VaultApi(address).status()
        session.terminal.info(f"Vault at {address}: {state.describe()}")
        session.terminal.result(
            {
                "ok": state.initialized and not state.sealed,
                "address": address,
                "initialized": state.initialized,
                "sealed": state.sealed,
                "version": state.version,
            }
        )


@vault.command()
@common_options
def unseal(
    common: CommonArgs,
) -> None:
    """Unseal Vault with the keys stored when it was initialised."""
    session = open_session(common)
    from bootstrap.stages.vault import stored_keys
    from stacks.errors import PermanentError
    from stacks.vault.api import VaultApi

    with reported_errors(session):
        address = _address(session)
        api = VaultApi(address)
        if not api.status().sealed:
            session.terminal.success(f"Vault at {address} is already unsealed.")
            session.terminal.result({"ok": True, "address": address, "changed": False})
            return
        keys, _ = stored_keys(stage_context(session, "vault", quiet=True))
        if keys is None:
            raise PermanentError(
                f"no unseal keys are stored for Vault at {address}",
                hint="unseal it with `bao operator unseal`, or set vault.unseal_keys_file",
            )
        api.unseal(keys.keys)
        session.terminal.success(f"Vault at {address} is unsealed.")
        session.terminal.result({"ok": True, "address": address, "changed": True})


@vault.command()
@common_options
@click.option(
    "--show-root-token",
    is_flag=True,
    help="Also print the root token (full control of Vault: do not share it).",
)
def credentials(
    common: CommonArgs,
    show_root_token: bool,
) -> None:
    """Print how to log in to Vault (the root token only with --show-root-token)."""
    session = open_session(common)
    from bootstrap.stages.terraform import VARS_FILE
    from bootstrap.stages.vault import vault_token

    with reported_errors(session):
        address = _address(session)
        generated = json.loads(session.state.read_secret(VARS_FILE) or "{}")
        data: dict[str, str] = {"address": address}
        if generated.get("userpass_password"):
            data.update(username="platform", password=generated["userpass_password"])
            session.terminal.info(f"Vault {address}: user 'platform' (userpass)")
            if session.terminal.mode != "json":  # json carries it in the summary
                click.echo(f"password: {generated['userpass_password']}")
        else:
            session.terminal.info("No userpass login yet: the terraform stage creates it.")
        if show_root_token:
            token = vault_token(stage_context(session, "vault", quiet=True))
            click.echo(
                "WARNING: the root token has full control of this Vault; do not share it "
                "or paste it into tickets or chats.",
                err=True,
            )
            if session.terminal.mode != "json":
                click.echo(f"root token: {token}")
            data["root_token"] = token
        session.terminal.result({"ok": True, **data})


@vault.command()
@common_options
def ui(
    common: CommonArgs,
) -> None:
    """Print the address of Vault's web UI. When Vault is reached through a port-forward
    (an existing cluster), keep forwarding until Ctrl-C."""
    session = open_session(common)
    from bootstrap.vault_access import access_mode

    with reported_errors(session):
        url = f"{_address(session)}/ui/"
        if session.terminal.mode != "json":
            click.echo(url)
        session.terminal.result({"ok": True, "url": url})
        if access_mode(session.settings) == "port-forward" and session.terminal.mode != "json":
            # The address is this process's port-forward: it must stay open while used.
            click.echo("forwarding through the Kubernetes API; press Ctrl-C to stop", err=True)
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()


def _address(session: Session) -> str:
    """Vault's address for this platform (opening a port-forward when that is the way)."""
    from bootstrap.vault_access import vault_address

    return vault_address(session.settings, stage_context(session, "vault", quiet=True).kube)
