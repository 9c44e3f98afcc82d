"""The per-platform state directory, ~/.platform/<name>/ (PLATFORM_HOME overrides ~/.platform).

    (the directory and every directory in it 0700: only this user reads any of it)
    state.json       stage records (start, end, outcome, duration, error), written atomically
    lock             held (flock) by the one `up`/`down` running; holds that process's pid
    kubeconfig       the cluster's kubeconfig (0600)
    secrets/         generated credentials and Vault keys (directory 0700, files 0600)
    logs/            one log file per run (0600)
    terraform/vault/ the `terraform` stage's working directory (state and plans 0600)

Called by the stage runner, the engines and the CLI. A kill -9 leaves a consistent
state.json (rename is atomic) and a lock that the kernel has already released.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from stacks.errors import PermanentError

STATE_VERSION = 1


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write via a temp file in the same directory, fsync, rename: never a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


class PlatformBusy(PermanentError):
    """Another process holds this platform's lock."""

    def __init__(self, name: str, pid: int | None, command: str) -> None:
        holder = f"pid {pid}" if pid else "another process"
        what = f" (`{command}`)" if command else ""
        super().__init__(
            f"platform {name!r} is busy: {holder}{what} is working on it",
            hint=f"wait for it to finish, or stop it (kill {pid})"
            if pid
            else "wait for it to finish",
        )
        self.pid = pid


@dataclass
class PlatformState:
    """Access to one platform's state directory."""

    home: Path
    name: str

    @property
    def root(self) -> Path:
        return self.home / self.name

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def exists(self) -> bool:
        return self.state_file.exists()

    def ensure(self) -> None:
        """The directory, private: besides secrets/ it holds the Terraform state and plans
        (the secret variables), the kubeconfig and the logs, for this user only."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        for directory in (self.root, self.secrets_dir, self.logs_dir):
            directory.mkdir(mode=0o700, exist_ok=True)
            os.chmod(directory, 0o700)

    # ---- state.json -------------------------------------------------------------------

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {"version": STATE_VERSION, "name": self.name, "stages": {}, "outputs": {}}
        except json.JSONDecodeError as error:
            raise PermanentError(
                f"{self.state_file} is not valid JSON ({error})",
                hint=f"move it aside and run `platform up --name {self.name}` again to rebuild it",
            ) from error
        data.setdefault("stages", {})
        data.setdefault("outputs", {})
        return dict(data)

    def save(self, data: dict[str, Any]) -> None:
        self.ensure()
        data["updated"] = now_iso()
        write_atomic(self.state_file, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())

    def update_stage(self, stage: str, **fields: Any) -> dict[str, Any]:
        data = self.load()
        record = dict(data["stages"].get(stage, {}))
        record.update(fields)
        data["stages"][stage] = record
        self.save(data)
        return record

    def set_output(self, key: str, value: Any) -> None:
        """Non-secret facts later commands print (git URL, Vault URL, ...)."""
        data = self.load()
        data["outputs"][key] = value
        self.save(data)

    def clear_output(self, key: str) -> None:
        """Forget a fact that no longer holds (a demo link once the demo app is gone)."""
        data = self.load()
        if data["outputs"].pop(key, None) is not None:
            self.save(data)

    def outputs(self) -> dict[str, Any]:
        return dict(self.load()["outputs"])

    # ---- secrets ----------------------------------------------------------------------

    def write_secret(self, filename: str, content: str | bytes) -> Path:
        """A secret file, 0600 from the moment it exists."""
        self.ensure()
        path = self.secrets_dir / filename
        write_atomic(path, content.encode() if isinstance(content, str) else content, mode=0o600)
        return path

    def read_secret(self, filename: str) -> str | None:
        path = self.secrets_dir / filename
        try:
            return path.read_text()
        except FileNotFoundError:
            return None

    def write_kubeconfig(self, content: str) -> Path:
        self.ensure()
        write_atomic(self.kubeconfig, content.encode(), mode=0o600)
        return self.kubeconfig

    # ---- lock ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, command: str) -> Iterator[None]:
        """Exclusive lock for `up`/`down`. The kernel drops it when the holder dies."""
        self.ensure()
        path = self.root / "lock"
        handle: IO[str] = open(path, "a+")  # noqa: SIM115 - held for the whole block
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                pid, holder = _parse_lock(handle.read())
                raise PlatformBusy(self.name, pid, holder) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()} {command}\n")
            handle.flush()
            try:
                yield
            finally:
                handle.seek(0)
                handle.truncate()
                handle.flush()
                fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            handle.close()

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def new_log_path(self, command: str) -> Path:
        self.ensure()
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        return self.logs_dir / f"{command}-{stamp}-{os.getpid()}.log"


def _parse_lock(text: str) -> tuple[int | None, str]:
    first, _, rest = text.strip().partition(" ")
    try:
        return int(first), rest
    except ValueError:
        return None, ""


def list_platforms(home: Path) -> list[PlatformState]:
    if not home.is_dir():
        return []
    return [
        PlatformState(home, entry.name)
        for entry in sorted(home.iterdir())
        if (entry / "state.json").is_file()
    ]
