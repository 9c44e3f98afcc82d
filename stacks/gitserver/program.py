"""`platform run gitserver`: the git server program (in the cluster and on a host).

The `platform run` dispatcher (bootstrap/cli/run.py) calls `main(argv)`; the container
runs the same command from the manifests in `manifests/`. This module only reads flags
(through the shared program shell, stacks/program.py: each has a PLATFORM_GIT_*
environment variable), sets up logging and wires the parts:
credentials (auth.py; tenants.py for the users committed to git), repositories (repos.py), `git http-backend` (backend.py),
webhooks (webhooks.py), the WSGI app (app.py) and waitress (server.py).

Exit codes: 0 after a graceful shutdown, 2 for a configuration a person must fix (the
message says how), 1 for anything unexpected.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from stacks.errors import PermanentError, PlatformError
from stacks.gitserver import server
from stacks.gitserver.app import AccessLog, GitServerApp, push_events
from stacks.gitserver.auth import CredentialStore
from stacks.gitserver.backend import HttpBackend
from stacks.gitserver.limits import DEFAULT_MAX_BODY, SCRATCH_HEADROOM, parse_size
from stacks.gitserver.logsafe import EscapingFilter
from stacks.gitserver.repos import RepoStore, git_environment
from stacks.gitserver.tenants import RepoUsers, parse_spec
from stacks.gitserver.throttle import Gatekeeper, LoginThrottle
from stacks.gitserver.webhooks import WebhookDispatcher, redact_url
from stacks.program import ProgramOptions, Sample, configure_logging, metrics_text, registry_for

log = logging.getLogger("platform.gitserver")


def parse_args(argv: list[str]) -> argparse.Namespace:
    # The variables keep their PLATFORM_GIT_* names: manifests and the bootstrap set them.
    options = ProgramOptions(
        "gitserver",
        "Git smart-HTTP server with basic auth and signed push webhooks.",
        kube=False,
        env_prefix="PLATFORM_GIT_",
        log_level=False,
    )
    options.add(
        "--data-dir",
        type=Path,
        default=Path("/var/lib/platform-git"),
        help="directory of the bare repositories",
    )
    options.add(
        "--listen",
        default="0.0.0.0:8080",
        help="host:port to listen on (git, /healthz, /readyz, /metrics); port 0 picks a free one",
    )
    options.add(
        "--credentials",
        type=Path,
        help="YAML/JSON file: users: {NAME: {password, access: read|write}}",
    )
    options.add(
        "--repo-users",
        default="",
        help="REPO:PATH of a users file committed to a repository here (hashed passwords, "
        "repos under tenants/), e.g. gitops:tenants/git-users.yaml; read again at each push",
    )
    options.add_list("--webhook-url", "POST push events here", env="WEBHOOK_URLS")
    options.add(
        "--webhook-secret-file",
        type=Path,
        help="file holding the HMAC secret that signs webhooks",
    )
    options.add(
        "--threads", type=int, default=8, help="worker threads, i.e. requests served at once"
    )
    options.parser.add_argument(
        "--create-repo",
        action="append",
        default=[],
        metavar="NAME",
        help="make sure this repository exists at start; repeatable",
    )
    options.add_flag("--no-auto-create", "do not create a repository on a first push")
    options.add_flag(
        "--allow-force-push",
        "let pushes rewrite (force-push) a repository's default branch; by default it "
        "accepts fast-forwards only; deleting it is always refused",
    )
    options.add(
        "--max-body-size",
        type=_size,
        default=DEFAULT_MAX_BODY,
        metavar="SIZE",
        help="request bodies (pushes) buffered in TMPDIR at once, all together, e.g. 1792Mi; "
        f"keep it {SCRATCH_HEADROOM // 1024**2}Mi below the space of TMPDIR (default: 2Gi "
        "less that, the Deployment's /tmp)",
    )
    options.add(
        "--max-connections",
        type=int,
        default=200,
        help="open connections; at the limit, idle and slow ones are closed first",
    )
    options.add(
        "--idle-timeout",
        type=float,
        default=60.0,
        help="seconds a connection may sit without a request",
    )
    options.add(
        "--header-timeout",
        type=float,
        default=15.0,
        help="seconds a client has to send a request's headers",
    )
    options.add(
        "--max-failed-logins",
        type=int,
        default=10,
        help="wrong passwords one client address may send per minute before it gets 429 "
        "for a while; 0: no limit",
    )
    options.add(
        "--drain-timeout",
        type=float,
        default=25.0,
        help="seconds to let requests in flight finish on SIGTERM",
    )
    options.add(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="DEBUG, INFO, WARNING, ERROR",
    )
    return options.parse(argv)


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_listen(value: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise PermanentError(
            f"--listen {value!r} is not host:port", hint="for example --listen 0.0.0.0:8080"
        )
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - a server listens on all addresses
    return host, int(port)


def _check_git() -> str:
    git = shutil.which("git")
    if git is None:
        raise PermanentError("git is not installed", hint="install git (2.26 or newer)")
    exec_path = subprocess.run(
        [git, "--exec-path"], capture_output=True, text=True, check=False, env=git_environment()
    ).stdout.strip()
    if not (Path(exec_path) / "git-http-backend").exists():
        raise PermanentError(
            "git http-backend is missing", hint="install git's full package (git-http-backend)"
        )
    return git


def _read_secret(path: Path) -> bytes:
    try:
        secret = path.read_bytes().strip()
    except OSError as error:
        raise PermanentError(
            f"cannot read the webhook secret file {path}: {error.strerror}"
        ) from error
    if not secret:
        raise PermanentError(f"the webhook secret file {path} is empty")
    return secret


def run(args: argparse.Namespace) -> None:
    host, port = parse_listen(args.listen)
    if args.credentials is None:
        raise PermanentError(
            "no credentials file", hint="pass --credentials FILE (users with read/write access)"
        )
    if args.webhook_url and args.webhook_secret_file is None:
        raise PermanentError(
            "--webhook-url needs --webhook-secret-file", hint="webhooks are always signed"
        )
    if args.threads < 1:
        raise PermanentError("--threads must be at least 1")
    if args.max_connections < args.threads + 2:
        raise PermanentError("--max-connections must be at least --threads + 2")
    if min(args.idle_timeout, args.header_timeout) < 1:
        raise PermanentError("--idle-timeout and --header-timeout must be at least 1 second")
    git = _check_git()
    store = RepoStore(
        args.data_dir.resolve(), git=git, protect_default_branch=not args.allow_force_push
    )
    tenants = None
    if args.repo_users:
        repo, path = parse_spec(args.repo_users)
        tenants = RepoUsers(store, repo, path, git=git)
    credentials = CredentialStore(
        args.credentials, extra=tenants.current if tenants is not None else None
    )
    store.ensure_root()
    store.configure_all()
    for name in args.create_repo:
        store.create(name)

    secret = _read_secret(args.webhook_secret_file) if args.webhook_url else b""
    webhooks = WebhookDispatcher(args.webhook_url, secret)
    webhooks.start()
    backend = HttpBackend(store, on_push=push_events(webhooks.publish), git=git)
    gate = Gatekeeper(credentials, LoginThrottle(burst=args.max_failed_logins, window=60.0))
    inner = GitServerApp(store, gate, backend, auto_create=not args.no_auto_create)
    app = AccessLog(inner)

    def samples() -> Iterator[Sample]:
        yield Sample("platform_gitserver_requests", "requests served", app.requests, True)
        yield Sample("platform_gitserver_requests_in_flight", "requests in flight", app.in_flight)
        yield Sample("platform_gitserver_repositories", "repositories", len(store.names()))

    registry = registry_for(samples)
    inner.metrics = lambda: metrics_text(registry)
    log.info(
        "serving %d repositories from %s; webhooks to %s",
        len(store.names()),
        store.root,
        ", ".join(redact_url(u) for u in args.webhook_url) or "nowhere",
    )
    try:
        server.serve(
            app,
            host,
            port,
            threads=args.threads,
            in_flight=lambda: app.in_flight,
            gate=gate,
            limits=server.Limits(
                max_body=args.max_body_size,
                idle_timeout=args.idle_timeout,
                header_timeout=args.header_timeout,
                max_connections=args.max_connections,
            ),
            drain_timeout=args.drain_timeout,
        )
    finally:
        webhooks.stop(flush_timeout=5.0)
        log.info("stopped")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level, quiet=())
    for handler in logging.getLogger().handlers:  # no client text can break a log line
        handler.addFilter(EscapingFilter())
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    # waitress warns at every flip of its connection limit; guard.py logs shedding instead
    logging.getLogger("waitress").setLevel(logging.ERROR)
    try:
        run(args)
    except PermanentError as error:
        hint = f" {error.hint[0].upper()}{error.hint[1:]}." if error.hint else ""
        print(f"gitserver: {error}.{hint}", file=sys.stderr)
        return 2
    except PlatformError as error:
        print(f"gitserver: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
