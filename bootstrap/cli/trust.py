"""`platform trust`: how to make this machine trust the platform's local CA, and (with
`--install`, explicit consent) doing it, so browsers and git accept https://*.<domain>.

The CA certificate is ~/.platform/<name>/ca.crt (written by the `certs` stage); its key
never leaves the cluster. Debian/Ubuntu: /usr/local/share/ca-certificates +
update-ca-certificates. Fedora/RHEL: /etc/pki/ca-trust/source/anchors + update-ca-trust.
macOS: the System keychain. Windows: certutil.
"""

from __future__ import annotations

import platform as python_platform
import shutil
import subprocess
from pathlib import Path

import click

from bootstrap.cli.common import CommonArgs, common_options, open_session, reported_errors
from stacks.errors import PermanentError


def linux_anchor(name: str) -> tuple[Path, list[str]] | None:
    """Where the system CA store takes extra certificates, and the command to refresh it."""
    if shutil.which("update-ca-certificates"):
        return Path(f"/usr/local/share/ca-certificates/platform-{name}.crt"), [
            "update-ca-certificates"
        ]
    if shutil.which("update-ca-trust"):
        return Path(f"/etc/pki/ca-trust/source/anchors/platform-{name}.crt"), [
            "update-ca-trust",
            "extract",
        ]
    return None


def instructions(name: str, ca: Path) -> list[str]:
    system = python_platform.system()
    if system == "Darwin":
        return [
            f"sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {ca}"
        ]
    if system == "Windows":
        return [f"certutil -addstore -f ROOT {ca}"]
    anchor = linux_anchor(name)
    if anchor is None:
        return [f"add {ca} to your system's CA certificates (see your distribution's docs)"]
    target, refresh = anchor
    return [f"sudo cp {ca} {target}", f"sudo {' '.join(refresh)}"]


@click.command()
@common_options
@click.option(
    "--install",
    "install_",
    is_flag=True,
    help="Install the CA into the system store (Linux, needs root).",
)
def trust(common: CommonArgs, install_: bool) -> None:
    """Show (or, with --install, do) what makes this machine trust the platform's CA."""
    session = open_session(common)
    settings, state, terminal = session.settings, session.state, session.terminal
    with reported_errors(session):
        ca = state.root / "ca.crt"
        if not ca.exists():
            raise PermanentError(
                f"platform {settings.name!r} has no CA certificate yet ({ca})",
                hint="run `platform up`; its certs stage creates the CA",
            )
        steps = instructions(settings.name, ca)
        if not install_:
            terminal.info(f"To trust the platform's CA ({ca}), run:")
            for step in steps:
                terminal.info(f"  {step}")
            terminal.result({"ok": True, "ca": str(ca), "steps": steps, "installed": False})
            return
        anchor = linux_anchor(settings.name) if python_platform.system() == "Linux" else None
        if anchor is None:
            raise PermanentError(
                "--install only knows the Linux system stores",
                hint="run the printed commands yourself (`platform trust` without --install)",
            )
        target, refresh = anchor
        try:
            shutil.copyfile(ca, target)
        except PermissionError as error:
            raise PermanentError(
                f"cannot write {target}: permission denied",
                hint="run `sudo platform trust --install`, or the printed commands",
            ) from error
        subprocess.run(refresh, check=True, capture_output=True)
        terminal.success(f"Installed the platform's CA as {target}.")
        terminal.result({"ok": True, "ca": str(ca), "installed": str(target)})
