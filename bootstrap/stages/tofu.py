"""The OpenTofu/Terraform adapter: the only module that imports `python_terraform`.

python-terraform builds the command lines (`init`, `plan -detailed-exitcode -out`,
`apply PLAN`, `import`); this module runs them with an explicit environment, because
secrets (the Vault token, sensitive `TF_VAR_*` values) must reach tofu through the
environment only, never argv, and never through this process's own `os.environ`, which
every other child would inherit. Output is returned for the log; failures become
PermanentError with the last lines of tofu's error output (which never holds a sensitive
variable's value: tofu prints "(sensitive value)"); a tofu killed by a signal is said to
be, without its progress lines.

tofu never outlives the bootstrap: it runs in its own process group with a parent-death
signal (SIGTERM, so it still writes its state and releases its lock), and whatever is left
in that group when it ends (its provider plugins, when tofu itself was killed) is killed.
It runs with umask 077: its state, backup, lock info and plan files hold the secret
variables, so they are 0600 from the moment they exist. python-terraform never reads the
state (its constructor would crash on the empty file a killed tofu leaves).

Called by the `terraform` stage.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import python_terraform

from stacks import redact
from stacks.errors import PermanentError, TransientError

PLAN_LINE = re.compile(r"Plan: (\d+) to add, (\d+) to change, (\d+) to destroy")
_ERROR_TAIL = 12
# What Vault answers while it is briefly unavailable: a KV v2 mount created a moment ago
# upgrades itself in the background (writes get HTTP 400 with this text until it is done),
# and a node that has just been unsealed may not be active yet. Applying again succeeds.
TRANSIENT_VAULT_ERRORS = (
    "Upgrading from non-versioned to versioned data",
    "local node not active but active cluster node not found",
)


@dataclass(frozen=True)
class PlanResult:
    changes: bool
    add: int = 0
    change: int = 0
    destroy: int = 0
    output: str = ""

    def summary(self) -> str:
        if not self.changes:
            return "no changes"
        return f"{self.add} to add, {self.change} to change, {self.destroy} to destroy"


def find_binary(configured: str, environ: Mapping[str, str]) -> str:
    """`terraform.binary`, else $PLATFORM_TERRAFORM_BIN, else tofu or terraform on PATH."""
    wanted = configured or environ.get("PLATFORM_TERRAFORM_BIN", "")
    if wanted:
        path = shutil.which(os.path.expanduser(wanted))
        if path is None:
            raise PermanentError(
                f"the Terraform binary {wanted!r} (terraform.binary or PLATFORM_TERRAFORM_BIN) "
                "is not an executable",
                hint="point terraform.binary at an OpenTofu or Terraform binary",
            )
        return path
    for name in ("tofu", "terraform"):
        path = shutil.which(name, path=environ.get("PATH"))
        if path:
            return path
    from bootstrap.tools import tools_dir

    installed = tools_dir() / "tofu"
    if installed.is_file():
        return str(installed)
    raise PermanentError(
        "neither `tofu` nor `terraform` is on PATH",
        hint="install OpenTofu (https://opentofu.org/docs/intro/install/) or set "
        "PLATFORM_TERRAFORM_BIN to its path, then run `platform up` again",
    )


def find_or_install(configured: str, environ: Mapping[str, str]) -> str:
    """`find_binary`, else the pinned OpenTofu release into ~/.platform/bin when online."""
    from bootstrap.pins import TOFU_VERSION
    from bootstrap.tools import install_tofu

    try:
        return find_binary(configured, environ)
    except PermanentError as missing:
        if configured or environ.get("PLATFORM_TERRAFORM_BIN"):
            raise
        try:
            return str(install_tofu())
        except PermanentError as error:
            raise PermanentError(
                f"{missing}, and {error}",
                hint=f"install OpenTofu {TOFU_VERSION} (https://opentofu.org/docs/intro/install/) "
                "or set PLATFORM_TERRAFORM_BIN to its path, then run `platform up` again",
            ) from error


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_GRACE = 10.0  # seconds tofu gets to write its state after SIGTERM before SIGKILL


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up in the parent: the dynamic loader is no place to be in a
    child forked from a threaded process."""
    try:
        return cast("Callable[..., int]", ctypes.CDLL(None, use_errno=True).prctl)
    except (OSError, AttributeError):  # not Linux: the process group still applies
        return None


def _child_setup(parent: int, prctl: Callable[..., int] | None) -> None:
    """Runs in the forked child before exec: die with the parent, create private files.

    The parent-death signal fires when the forking thread ends, which for a stage is only
    when the whole process dies (the stage thread waits for tofu). SIGTERM, not SIGKILL:
    tofu then stops the apply cleanly, writes its state and releases its lock.
    """
    os.umask(0o077)
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os.kill(os.getpid(), signal.SIGKILL)


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class _Command(python_terraform.Terraform):  # type: ignore[misc]
    """python-terraform's command builder, run with our environment."""

    def read_state_file(self, file_path: str | None = None) -> None:
        """Never read: the stage owns the state (see state.py), and python-terraform's reader
        raises JSONDecodeError on the empty file a killed tofu leaves."""

    def run(
        self, env: Mapping[str, str], timeout: float, cmd: str, *args: Any, **options: Any
    ) -> tuple[int, str, str]:
        argv = [str(a) for a in self.generate_cmd_string(cmd, *args, **options)]
        # Files, not pipes: a provider orphaned by a killed tofu could hold a pipe open.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            process = subprocess.Popen(
                argv,
                cwd=self.working_dir,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                process_group=0,  # its own group: Ctrl-C on the terminal is ours to handle
                preexec_fn=functools.partial(_child_setup, os.getpid(), _prctl()),
            )
            try:
                code = _wait(process, timeout)
            finally:
                # Anything left in its group (providers of a killed tofu) goes with it.
                _kill_group(process.pid, signal.SIGKILL)
            out.seek(0)
            err.seek(0)
            stdout = out.read().decode(errors="replace")
            stderr = err.read().decode(errors="replace")
        if code is None:
            raise TransientError(f"`{Path(argv[0]).name} {cmd}` did not finish in {timeout:.0f}s")
        return code, stdout, stderr


def _wait(process: subprocess.Popen[bytes], timeout: float) -> int | None:
    """Its exit code, or None after a timeout (then it is stopped: SIGTERM so it saves its
    state, SIGKILL after a grace period). Our own Ctrl-C stops it the same way."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(process)
        return None
    except BaseException:
        _stop(process)
        raise


def _stop(process: subprocess.Popen[bytes]) -> None:
    _kill_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=_GRACE)
    except subprocess.TimeoutExpired:
        _kill_group(process.pid, signal.SIGKILL)
        process.wait()


def failure(tool: str, cmd: str, code: int, out: str, err: str) -> PermanentError | TransientError:
    """The error for a failed run: transient when Vault was only briefly unavailable (the
    runner retries the stage), else permanent; the output's last lines, redacted. A run
    killed by a signal says so: its last lines are progress, not a cause."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return PermanentError(
            f"`{tool} {cmd}` was killed by {name} before it finished",
            hint="something outside platform stopped it (out of memory, or a kill); "
            "run `platform up` again: it recovers the Terraform state the killed run left",
        )
    tail = "\n".join((err or out).strip().splitlines()[-_ERROR_TAIL:])
    message = f"`{tool} {cmd}` failed (exit {code}): {redact.redact(tail)}"
    if any(marker in out or marker in err for marker in TRANSIENT_VAULT_ERRORS):
        return TransientError(message, hint="Vault was briefly unavailable; retrying")
    return PermanentError(
        message,
        hint="see the log for the full output; fix the cause and run `platform up` again",
    )


class Tofu:
    """One working directory and one environment."""

    def __init__(
        self, binary: str, working_dir: Path, env: Mapping[str, str], timeout: float = 300.0
    ) -> None:
        self.binary = binary
        self.working_dir = working_dir
        self.env = dict(env)
        self.timeout = timeout
        self._command = _Command(working_dir=str(working_dir), terraform_bin_path=binary)
        self.output: list[str] = []

    @property
    def tool(self) -> str:
        return Path(self.binary).name

    def _run(
        self, cmd: str, *args: Any, ok: tuple[int, ...] = (0,), **options: Any
    ) -> tuple[int, str]:
        code, out, err = self._command.run(self.env, self.timeout, cmd, *args, **options)
        self.output.append(f"$ {self.tool} {cmd} (exit {code})\n{out}{err}")
        if code not in ok:
            raise failure(self.tool, cmd, code, out, err)
        return code, out

    def version(self) -> str:
        _, out = self._run("version")
        return out.splitlines()[0] if out else self.tool

    def init(self) -> None:
        self._run("init", input=False, no_color=python_terraform.IsFlagged)

    def plan(self, plan_file: str) -> PlanResult:
        code, out = self._run(
            "plan",
            ok=(0, 2),
            input=False,
            no_color=python_terraform.IsFlagged,
            detailed_exitcode=python_terraform.IsFlagged,
            out=plan_file,
            lock_timeout="30s",
        )
        if code == 0:
            return PlanResult(False, output=out)
        match = PLAN_LINE.search(out)
        add, change, destroy = (int(n) for n in match.groups()) if match else (0, 0, 0)
        return PlanResult(True, add, change, destroy, output=out)

    def apply(self, plan_file: str) -> str:
        _, out = self._run(
            "apply", plan_file, input=False, no_color=python_terraform.IsFlagged, lock_timeout="30s"
        )
        return out

    def import_resource(self, address: str, resource_id: str) -> str:
        """Adopt an object that exists but is not in the state (see state recovery)."""
        _, out = self._run(
            "import",
            address,
            resource_id,
            input=False,
            no_color=python_terraform.IsFlagged,
            lock_timeout="30s",
        )
        return out
