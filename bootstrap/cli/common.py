"""What every command shares: the common options, settings, the terminal, the log file,
and the one place that turns errors into sentences and exit codes.

Exit codes: 0 success, 1 failure (a sentence says why and what to do), 2 usage error
(an invalid flag, setting, environment variable or config file: click's own and every
`ConfigError`), 130 interrupted (Ctrl-C). Errors go to stderr, once (json mode: one
`error` event on stdout, the machine-readable stream). Tracebacks only with --debug;
otherwise they go to the log.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from bootstrap.cli.terminal import Terminal
from bootstrap.config import ConfigError, Settings, load_settings, platform_home
from bootstrap.state import PlatformState
from stacks.errors import PlatformError
from stacks.redact import RedactingFilter

if TYPE_CHECKING:
    from bootstrap.stages.base import StageContext

F = TypeVar("F", bound=Callable[..., Any])

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def exit_code(error: PlatformError) -> int:
    """The exit code an error ends a command with: bad usage also when a stage failed on
    a file or setting the user gave (the stage runner wraps the ConfigError)."""
    if isinstance(error, ConfigError) or isinstance(error.__cause__, ConfigError):
        return EXIT_USAGE
    return EXIT_INTERRUPTED if type(error).__name__ == "Interrupted" else EXIT_FAILURE


@dataclass(frozen=True)
class CommonArgs:
    """The options every platform command takes, gathered by `common_options`."""

    name: str | None
    config_file: Path | None
    output: str | None
    verbose: int
    quiet: bool
    debug: bool


def common_options(func: F) -> F:
    """--name, --config, --output, -v/-q, --debug on a command, handed to it as one
    `common: CommonArgs` argument."""

    @functools.wraps(func)
    def gather(
        *args: Any,
        name: str | None,
        config_file: Path | None,
        output: str | None,
        verbose: int,
        quiet: bool,
        debug: bool,
        **kwargs: Any,
    ) -> Any:
        common = CommonArgs(name, config_file, output, verbose, quiet, debug)
        return func(*args, common=common, **kwargs)

    options = [
        click.option(
            "--name",
            "name",
            default=None,
            help="Platform name [env PLATFORM_NAME; default: local].",
        ),
        click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="Settings file [default: ./platform.yaml when present].",
        ),
        click.option(
            "--output",
            "-o",
            type=click.Choice(["text", "json"]),
            default=None,
            help="Output format; json prints one event per line [env PLATFORM_OUTPUT].",
        ),
        click.option("-v", "--verbose", count=True, help="More detail (repeatable)."),
        click.option("-q", "--quiet", is_flag=True, help="Only errors and the final result."),
        click.option(
            "--debug", is_flag=True, help="Debug logging to stderr and tracebacks on errors."
        ),
    ]
    command: Any = gather
    for option in reversed(options):
        command = option(command)
    return cast(F, command)


def _apply(func: F, options: list[Callable[[F], F]]) -> F:
    for option in reversed(options):
        func = option(func)
    return func


def kubeconfig_options(func: F) -> F:
    """--kubeconfig and --context: which cluster, when it is not the platform's own."""
    return _apply(
        func,
        [
            click.option(
                "--kubeconfig",
                default=None,
                help="Kubeconfig of the cluster (engine existing) [env PLATFORM_KUBECONFIG].",
            ),
            click.option(
                "--context", default=None, help="Kubeconfig context [env PLATFORM_CONTEXT]."
            ),
        ],
    )


def engine_options(func: F) -> F:
    """--engine plus the kubeconfig options."""
    engine = click.option(
        "--engine",
        type=click.Choice(["k3d", "existing"]),
        default=None,
        help="Where the cluster comes from [env PLATFORM_ENGINE; default: k3d].",
    )
    return engine(kubeconfig_options(func))


@dataclass
class Session:
    settings: Settings
    state: PlatformState
    terminal: Terminal
    debug: bool
    log_path: Path | None = None


def open_session(common: CommonArgs, flags: dict[str, Any] | None = None) -> Session:
    """Settings (with the ones saved for this platform), state and terminal for a command."""
    output = common.output or os.environ.get("PLATFORM_OUTPUT") or "text"
    terminal = Terminal(output=output, verbosity=-1 if common.quiet else common.verbose)
    all_flags = dict(flags or {})
    all_flags["name"] = common.name
    # Before anything can fail: without a handler, logging's last resort would print the
    # error a second time, raw, on stderr.
    _configure_logging(common.debug)
    try:
        preliminary = load_settings(flags={"name": common.name}, config_file=common.config_file)
        saved = PlatformState(platform_home(), preliminary.name).load().get("settings", {})
        settings = load_settings(flags=all_flags, config_file=common.config_file, saved=saved)
    except PlatformError as error:
        terminal.failure(str(error), error.hint)
        sys.exit(exit_code(error))
    state = PlatformState(settings.home, settings.name)
    return Session(settings, state, terminal, common.debug)


def stage_context(
    session: Session, command: str, quiet: bool = False, dry_run: bool = False
) -> StageContext:
    """The context stages run in for this command: the platform's engine, the terminal as
    progress (or nothing, for commands that print their own result), a named logger."""
    from bootstrap.engines.choose import engine_for
    from bootstrap.stages.base import NullProgress, StageContext

    return StageContext(
        settings=session.settings,
        state=session.state,
        progress=NullProgress() if quiet else session.terminal,
        engine=engine_for(session.settings, session.state),
        log=logging.getLogger(f"platform.{command}"),
        dry_run=dry_run,
    )


def _configure_logging(debug: bool) -> None:
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    if not any(isinstance(h, logging.NullHandler) for h in root.handlers):
        # Without any handler, logging's last resort would print warnings to stderr.
        root.addHandler(logging.NullHandler())
    for handler in list(root.handlers):
        if getattr(handler, "_platform", False):
            root.removeHandler(handler)
    if debug:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(RedactingFilter())
        handler._platform = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    # Libraries are chatty at DEBUG; our own loggers keep their detail.
    for noisy in ("urllib3", "kubernetes", "docker", "git", "hvac"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextlib.contextmanager
def log_to_file(session: Session, command: str) -> Iterator[Path]:
    """One log file per run in the state dir; every record passes the secret filter."""
    path = session.state.new_log_path(command)
    handler = logging.FileHandler(path)
    os.chmod(path, 0o600)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    handler._platform = True  # type: ignore[attr-defined]
    logging.getLogger().addHandler(handler)
    session.log_path = path
    try:
        yield path
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


@contextlib.contextmanager
def reported_errors(session: Session) -> Iterator[None]:
    """Turn errors into a two-sentence message and an exit code; tracebacks only with --debug."""
    log_path = str(session.log_path) if session.log_path else None
    try:
        yield
    except PlatformError as error:
        logging.getLogger("platform").debug("error details", exc_info=True)
        session.terminal.failure(
            str(error), error.hint, str(session.log_path) if session.log_path else log_path
        )
        if session.debug:
            raise
        sys.exit(exit_code(error))
    except KeyboardInterrupt:
        session.terminal.failure("interrupted", "run the command again to resume", log_path)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as error:
        logging.getLogger("platform").exception("unexpected error")
        session.terminal.failure(
            f"unexpected error: {type(error).__name__}: {error}",
            "this is a bug in platform; please report it with the log file"
            + ("" if session.debug else " (or re-run with --debug for the traceback)"),
            str(session.log_path) if session.log_path else log_path,
        )
        if session.debug:
            raise
        sys.exit(EXIT_FAILURE)


def sigterm_as_interrupt() -> None:
    """SIGTERM (e.g. CI cancelling a job) behaves like Ctrl-C: record, stop, exit 130."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
