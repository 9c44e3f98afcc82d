"""Run `helm` or `kustomize` once, bounded: a timeout, a cap on stdout, stderr trimmed.

A chart is code anyone with push access wrote: its render may loop forever (a recursive
template), print gigabytes (a `range` over a large `until`), or fail with a message that
holds terminal escapes. `run_tool` reads both pipes as they fill, kills the tool's whole
process group when the output passes `max_output` or the deadline passes, and returns
stderr as one trimmed, printable line for a status message. Credentials never reach
argv: callers pass them in private files.

Called by kustomize.py, helm.py and renderer.py.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from stacks.errors import PermanentError, TransientError

STDERR_KEEP = 16 * 1024  # bytes of stderr kept (the tail: where a tool says why)
MESSAGE_CHARS = 600  # characters of it in a status message


class ToolFailed(PermanentError):
    """The tool ran and said no (a bad template, a missing file): its own message."""


class ToolTimeout(TransientError):
    """The tool did not finish in time (a hanging render, a slow chart repository)."""


class ToolOutputTooLarge(PermanentError):
    """The tool printed more than a render may hold."""


# What a tool may see of the reconciler's environment: the reconciler's own secrets (a
# webhook secret, tokens) are never handed to code a chart or kustomization controls.
PASSED_ENV = (
    "PATH",
    "LANG",
    "LC_ALL",
    "TZ",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)


def tool_env(home: Path) -> dict[str, str]:
    """A minimal environment for helm or kustomize, its home (config, caches) at `home`."""
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_CACHE_HOME": str(home / "cache"),
            "XDG_DATA_HOME": str(home / "data"),
        }
    )
    return env


@dataclass(frozen=True)
class ToolResult:
    stdout: bytes
    stderr: str


def printable(text: str, limit: int = MESSAGE_CHARS) -> str:
    """`text` as one line of printable characters (control characters escaped), trimmed."""
    out = []
    for char in " ".join(text.split()):
        if char.isprintable():
            out.append(char)
        else:
            out.append(char.encode("unicode_escape").decode("ascii"))
    line = "".join(out)
    return line if len(line) <= limit else line[: limit - 3] + "..."


def run_tool(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    timeout: float,
    max_output: int,
    what: str,
) -> ToolResult:
    """Run `argv`; raises ToolFailed, ToolTimeout or ToolOutputTooLarge, naming `what`."""
    try:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # one process group: a kill reaches what it started
        )
    except OSError as error:
        raise ToolFailed(
            f"{what}: cannot run {argv[0]}: {error.strerror}",
            hint=f"install {Path(argv[0]).name} where the reconciler runs (the image carries it)",
        ) from error
    assert process.stdout is not None and process.stderr is not None
    deadline = time.monotonic() + timeout
    out: list[bytes] = []
    out_size = 0
    err = bytearray()
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ, "out")
    selector.register(process.stderr, selectors.EVENT_READ, "err")
    failure: Exception | None = None
    try:
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                failure = ToolTimeout(
                    f"{what} did not finish within {timeout:.0f}s and was stopped; "
                    "nothing was applied or pruned"
                )
                break
            for key, _ in selector.select(timeout=min(left, 1.0)):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                if key.data == "out":
                    out.append(chunk)
                    out_size += len(chunk)
                    if out_size > max_output:
                        failure = ToolOutputTooLarge(
                            f"{what} printed more than {max_output // (1024 * 1024)} MiB of "
                            "manifests and was stopped; nothing was applied or pruned",
                            hint="render less per Application (split the chart or overlay)",
                        )
                        break
                else:
                    err += chunk
                    del err[:-STDERR_KEEP]
            if failure is not None:
                break
    finally:
        selector.close()
        if failure is not None:
            _kill(process)
        code = _wait(process, max(deadline - time.monotonic(), 0.1))
        if code is None and failure is None:
            failure = ToolTimeout(
                f"{what} did not finish within {timeout:.0f}s and was stopped; "
                "nothing was applied or pruned"
            )
        process.stdout.close()
        process.stderr.close()
    if failure is not None:
        raise failure
    stderr = err.decode(errors="replace")
    if code != 0:
        raise ToolFailed(
            f"{what} failed: {printable(stderr) or f'exit code {code}'}; "
            "nothing was applied or pruned",
            hint="fix the chart or kustomization and push a new commit",
        )
    return ToolResult(b"".join(out), stderr)


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _wait(process: subprocess.Popen[bytes], left: float) -> int | None:
    """Its exit code; None when it closed its pipes but lingered past the deadline (killed)."""
    try:
        return process.wait(timeout=left)
    except subprocess.TimeoutExpired:
        _kill(process)
        process.wait()
        return None
