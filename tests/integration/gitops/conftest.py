"""Fixtures for the GitOps repository tests: stage contexts whose git settings point at
the real git server process (`git_server`), password files written 0600 like a user
would, debug logging captured to a file without the redacting filter (so a leak shows),
and a watcher of every process's command line."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bootstrap.config import load_settings
from bootstrap.engines.existing import ExistingEngine
from bootstrap.stages.base import StageContext
from bootstrap.state import PlatformState
from stacks.errors import PermanentError
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


def progress_lines(ctx: StageContext) -> list[str]:
    """What the stages reported to the context's RecordingProgress (possibly wrapped)."""
    progress: object = ctx.progress
    while not isinstance(progress, RecordingProgress):
        progress = getattr(progress, "inner")  # noqa: B009 - the runner's wrapper
    return progress.lines


class NoCluster:
    name = "none"

    def client(self) -> object:
        raise PermanentError("no cluster in this test")


@pytest.fixture
def debug_log(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "debug.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in ("git", "git.cmd"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield path
    root.removeHandler(handler)
    root.setLevel(old_level)
    handler.close()


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


MakeContext = Callable[..., StageContext]


@pytest.fixture
def make_context(tmp_path: Path, debug_log: Path) -> MakeContext:
    def make(kubeconfig: Path | None = None, name: str = "gt", **env: str) -> StageContext:
        environ = {
            "PLATFORM_HOME": os.environ["PLATFORM_HOME"],
            "PLATFORM_NAME": name,
            "PLATFORM_ENGINE": "existing",
            "PLATFORM_DOMAIN": "gitops.test",
            **env,
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

    return make


@contextmanager
def watching_argv() -> Iterator[list[str]]:
    """Collect the command lines of every process on the machine while the block runs."""
    seen: list[str] = []
    stop = threading.Event()

    def scan() -> None:
        while not stop.is_set():
            for proc in Path("/proc").iterdir():
                if proc.name.isdigit():
                    with suppress(OSError):
                        seen.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            stop.wait(0.02)

    thread = threading.Thread(target=scan, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()
