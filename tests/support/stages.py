"""Helpers for tests that run bootstrap stages directly: a progress recorder, a stage
context built from PLATFORM_* values, debug logging captured WITHOUT the redacting
filter (so a leaked secret shows), a watcher of every process's command line, and the
git settings for the project's git server as an external one.

Used by the vault, gitops and host-platform tests.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from bootstrap.config import load_settings
from bootstrap.engines.existing import ExistingEngine
from bootstrap.stages.base import StageContext
from bootstrap.state import PlatformState
from stacks.errors import PermanentError, WaitingError
from tests.support.gitserver import ADMIN, READER, GitServer


@dataclass
class RecordingProgress:
    lines: list[str] = field(default_factory=list)

    def step(self, stage: str, message: str) -> None:
        self.lines.append(f"step {stage}: {message}")

    def note(self, stage: str, message: str) -> None:
        self.lines.append(f"note {stage}: {message}")

    def warn(self, stage: str, message: str) -> None:
        self.lines.append(f"warn {stage}: {message}")


def run_until_done(
    stage: object,
    ctx: StageContext,
    timeout: float = 120,
    on_waiting: Callable[[WaitingError], None] | None = None,
) -> str:
    """Run a stage as the runner does: after each WaitingError wait (at most 1 s here)
    and run it again, until it returns its summary; `on_waiting` sees each wait."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            summary: str = stage.run(ctx)  # type: ignore[attr-defined]
            return summary
        except WaitingError as waiting:
            assert time.monotonic() < deadline, f"still waiting after {timeout}s: {waiting}"
            if on_waiting is not None:
                on_waiting(waiting)
            time.sleep(min(waiting.retry_after, 1.0))


def progress_lines(ctx: StageContext) -> list[str]:
    """What the stages reported to the context's RecordingProgress (possibly wrapped)."""
    progress: object = ctx.progress
    while not isinstance(progress, RecordingProgress):
        progress = getattr(progress, "inner")  # noqa: B009 - the context's wrapper
    return progress.lines


class NoCluster:
    name = "none"

    def client(self) -> object:
        raise PermanentError("no cluster in this test")


# make(address, kubeconfig=None, name="vt", **env) -> a StageContext: the vault tests'
# `make_context` fixture (tests/integration/vault/conftest.py).
MakeContext = Callable[..., StageContext]


def stage_context(environ: dict[str, str], kubeconfig: Path | None = None) -> StageContext:
    """A context for running stages directly, settings from `environ` (PLATFORM_*)."""
    environ = {
        "PLATFORM_HOME": os.environ["PLATFORM_HOME"],
        "PLATFORM_ENGINE": "existing",
        **environ,
    }
    if kubeconfig is not None:
        environ["PLATFORM_KUBECONFIG"] = str(kubeconfig)
    settings = load_settings(environ=environ)
    state = PlatformState(settings.home, settings.name)
    state.ensure()
    engine = ExistingEngine(settings, state) if kubeconfig is not None else NoCluster()
    return StageContext(
        settings=settings,
        state=state,
        progress=RecordingProgress(),
        engine=engine,  # type: ignore[arg-type]
        log=logging.getLogger("platform.test"),
    )


@contextmanager
def debug_log(path: Path, loggers: tuple[str, ...] = ()) -> Iterator[Path]:
    """Root logging at DEBUG into `path`, without the redacting filter the CLI installs:
    leak tests check the first line of defence (nothing logs a secret at all)."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in loggers:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()


@contextmanager
def watching_argv(interval: float = 0.02) -> Iterator[list[str]]:
    """Collect the command lines of every process on the machine while the block runs."""
    seen: list[str] = []
    stop = threading.Event()

    def scan() -> None:
        while not stop.is_set():
            for proc in Path("/proc").iterdir():
                if proc.name.isdigit():
                    with suppress(OSError):
                        seen.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            stop.wait(interval)

    thread = threading.Thread(target=scan, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()


def secret_file(path: Path, value: str) -> Path:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def external_git_env(server: GitServer, workdir: Path) -> dict[str, str]:
    """PLATFORM_GIT_* for `server` as the platform's external git server."""
    workdir.mkdir(parents=True, exist_ok=True)
    return {
        "PLATFORM_GIT_URL": server.url,
        "PLATFORM_GIT_USERNAME": ADMIN,
        "PLATFORM_GIT_PASSWORD_FILE": str(secret_file(workdir / "git-rw", server.passwords[ADMIN])),
        "PLATFORM_GIT_READONLY_USERNAME": READER,
        "PLATFORM_GIT_READONLY_PASSWORD_FILE": str(
            secret_file(workdir / "git-ro", server.passwords[READER])
        ),
    }
