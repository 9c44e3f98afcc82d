"""The one place that prints. Three modes, chosen once per command:

    live    a TTY: a rich live view of every stage (status, spinner, elapsed time, and
            the current step inside the running stage)
    plain   not a TTY (CI, pipes): one plain line per event
    json    --output json: one JSON object per line per event, then a summary object

Errors (`failure`) go to stderr, so `platform up > /dev/null` still shows them; in json
mode they are one `error` event on stdout with the rest of the stream.

`Terminal` implements the stages' `Progress` protocol and the runner's `Events`
callbacks, so stages and the runner never import rich. Every event is also written to the
run's log file. `-q` keeps only errors and the summary; `-v` adds detail; NO_COLOR is
honoured by rich itself. Thread-safe: stages report from a worker thread.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Any, Literal

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from bootstrap.stages.runner import Events, StageReport
from stacks.errors import PlatformError

Mode = Literal["live", "plain", "json"]
log = logging.getLogger("platform")
# Without any handler logging's last resort prints warnings and errors raw on stderr, a
# second time beside `failure`; commands add their file and --debug handlers to the root.
log.addHandler(logging.NullHandler())

ICONS = {
    "pending": ("·", "dim"),
    "running": ("", ""),
    "done": ("✓", "green"),
    "verified": ("✓", "green"),
    "failed": ("✗", "red"),
    "interrupted": ("!", "yellow"),
}


@dataclass
class _StageLine:
    name: str
    description: str = ""
    status: str = "pending"
    step: str = ""
    started: float = 0.0
    seconds: float = 0.0
    spinner: Spinner = field(default_factory=lambda: Spinner("dots", style="cyan"))


class Terminal(Events):
    def __init__(
        self,
        output: str = "text",
        verbosity: int = 0,
        stream: IO[str] | None = None,
        force_terminal: bool | None = None,
        width: int | None = None,
        error_stream: IO[str] | None = None,
    ) -> None:
        self.stream = stream or sys.stdout
        self.verbosity = verbosity
        self.console = Console(
            file=self.stream, force_terminal=force_terminal, width=width, highlight=False
        )
        self.errors = Console(
            file=error_stream or sys.stderr,
            force_terminal=force_terminal,
            width=width,
            highlight=False,
        )
        if output == "json":
            self.mode: Mode = "json"
        elif self.console.is_terminal and verbosity >= 0:
            self.mode = "live"
        else:
            self.mode = "plain"
        self._lock = threading.RLock()
        self._lines: dict[str, _StageLine] = {}
        self._live: Live | None = None
        self._started = time.monotonic()

    # ---- run lifecycle ------------------------------------------------------------------

    def begin(self, title: str, stages: list[tuple[str, str]]) -> None:
        """Show the stages that will be considered, in order."""
        with self._lock:
            self._lines = {name: _StageLine(name, description) for name, description in stages}
            self._emit_json("begin", title=title, stages=[n for n, _ in stages])
            if self.mode == "live":
                self.console.print(Text(title, style="bold"))
                self._live = Live(self, console=self.console, refresh_per_second=8, transient=False)
                self._live.start()
            elif self.mode == "plain" and self.verbosity >= 0:
                self._print_plain(title)
        log.info("%s", title)

    def end(self) -> None:
        with self._lock:
            if self._live is not None:
                self._live.stop()
                self._live = None

    def __rich__(self) -> RenderableType:
        with self._lock:
            # Fixed, unwrappable columns for icon, stage and time; only the detail flexes
            # (ratio) and is cut with an ellipsis. Without this, one detail wider than the
            # terminal made rich shrink every other column to nothing, on every row.
            name_width = max((len(n) for n in self._lines), default=0)
            table = Table.grid(padding=(0, 1), expand=True)
            table.add_column(width=2, no_wrap=True)
            table.add_column(width=max(name_width, 11), no_wrap=True)
            table.add_column(justify="right", width=7, no_wrap=True)
            table.add_column(overflow="ellipsis", no_wrap=True, ratio=1, min_width=10)
            now = time.monotonic()
            for line in self._lines.values():
                if line.status == "running":
                    icon: RenderableType = line.spinner
                    elapsed = now - line.started
                    detail = Text(line.step or line.description)
                else:
                    symbol, style = ICONS.get(line.status, ("?", ""))
                    icon = Text(symbol, style=style)
                    elapsed = line.seconds
                    detail = Text(
                        line.step
                        if line.status in ("failed", "interrupted", "verified", "done")
                        else line.description,
                        style="dim" if line.status == "pending" else "",
                    )
                table.add_row(
                    icon,
                    Text(line.name, style="bold" if line.status == "running" else ""),
                    Text(f"{elapsed:.1f}s" if line.status != "pending" else "", style="dim"),
                    detail,
                )
            return Group(table)

    # ---- runner events ------------------------------------------------------------------

    def stage_started(self, name: str, description: str) -> None:
        with self._lock:
            line = self._lines.setdefault(name, _StageLine(name, description))
            line.status, line.started, line.step = "running", time.monotonic(), ""
        log.info("stage %s: started (%s)", name, description)
        self._emit_json("stage_started", stage=name, description=description)
        if self.mode == "plain" and self.verbosity >= 0:
            self._print_plain(f"[{name}] started: {description}")

    def stage_finished(self, report: StageReport) -> None:
        with self._lock:
            line = self._lines.setdefault(report.name, _StageLine(report.name))
            line.status, line.seconds, line.step = report.outcome, report.seconds, report.summary
        log.info(
            "stage %s: %s in %.2fs: %s", report.name, report.outcome, report.seconds, report.summary
        )
        self._emit_json(
            "stage_finished",
            stage=report.name,
            outcome=report.outcome,
            seconds=round(report.seconds, 3),
            summary=report.summary,
        )
        if self.mode == "plain" and self.verbosity >= 0:
            verb = "done" if report.outcome == "done" else "already done (verified)"
            self._print_plain(f"[{report.name}] {verb} in {report.seconds:.1f}s: {report.summary}")

    def stage_failed(self, name: str, error: PlatformError, seconds: float) -> None:
        with self._lock:
            line = self._lines.setdefault(name, _StageLine(name))
            line.status, line.seconds, line.step = "failed", seconds, str(error)
        log.error("stage %s: failed after %.2fs: %s (hint: %s)", name, seconds, error, error.hint)
        self._emit_json(
            "stage_failed", stage=name, seconds=round(seconds, 3), error=str(error), hint=error.hint
        )
        if self.mode == "plain" and self.verbosity >= 0:
            self._print_plain(f"[{name}] failed after {seconds:.1f}s")

    def stage_interrupted(self, name: str) -> None:
        with self._lock:
            line = self._lines.get(name)
            if line is not None:
                line.status, line.step = "interrupted", "interrupted"

    def stage_retrying(self, name: str, error: PlatformError, attempt: int, delay: float) -> None:
        self.step(name, f"retrying in {delay:.0f}s (attempt {attempt}): {error}")

    # ---- stage progress (bootstrap.stages.base.Progress) ----------------------------------

    def step(self, stage: str, message: str) -> None:
        with self._lock:
            line = self._lines.get(stage)
            if line is not None:
                line.step = message
        log.info("stage %s: %s", stage, message)
        self._emit_json("step", stage=stage, message=message)
        if self.mode == "plain" and self.verbosity >= 0:
            self._print_plain(f"[{stage}] {message}")

    def note(self, stage: str, message: str) -> None:
        log.info("stage %s: %s", stage, message)
        self._emit_json("note", stage=stage, message=message)
        if self.mode != "json" and self.verbosity >= 0:
            self._print_plain(f"[{stage}] {message}")

    def warn(self, stage: str, message: str) -> None:
        log.warning("stage %s: %s", stage, message)
        self._emit_json("warning", stage=stage, message=message)
        if self.mode != "json":
            self._print_plain(f"[{stage}] warning: {message}", style="yellow")

    # ---- plain output -----------------------------------------------------------------

    def info(self, message: str) -> None:
        log.info("%s", message)
        if self.mode != "json" and self.verbosity >= 0:
            self._print_plain(message)

    def detail(self, message: str) -> None:
        """Only with -v."""
        log.debug("%s", message)
        if self.mode != "json" and self.verbosity > 0:
            self._print_plain(message, style="dim")

    def success(self, message: str) -> None:
        log.info("%s", message)
        if self.mode != "json":
            self._print_plain(message, style="green")

    def failure(self, cause: str, hint: str, log_path: str | None = None) -> None:
        """A failure in two sentences (cause, what to do) and where the full log is."""
        log.error("%s -- %s", cause, hint)
        self.end()
        if self.mode == "json":
            self._emit_json("error", error=cause, hint=hint, log=log_path)
            return
        # soft_wrap: long causes and paths stay on one line, copy-pasteable.
        self.errors.print(Text(f"Error: {_sentence(cause)}", style="bold red"), soft_wrap=True)
        if hint:
            self.errors.print(Text(f"To fix: {_sentence(hint)}"), soft_wrap=True)
        if log_path:
            self.errors.print(Text(f"Log: {log_path}", style="dim"), soft_wrap=True)

    def table(self, columns: list[str], rows: list[list[str]], title: str = "") -> None:
        if self.mode == "json":
            self._emit_json(
                "table", title=title, rows=[dict(zip(columns, row, strict=False)) for row in rows]
            )
            return
        table = Table(
            *columns,
            title=title or None,
            title_justify="left",
            box=None,
            pad_edge=False,
            header_style="bold",
        )
        for row in rows:
            table.add_row(*row)
        self.console.print(table)

    def result(self, data: dict[str, Any]) -> None:
        """The final machine-readable summary (json mode) of a command."""
        if self.mode == "json":
            self._emit_json("summary", **data)

    def emit(self, event: str, **fields: Any) -> None:
        self._emit_json(event, **fields)

    # ---- internals --------------------------------------------------------------------

    def _print_plain(self, message: str, style: str = "") -> None:
        with self._lock:
            if self._live is not None:
                self._live.console.print(Text(message, style=style), soft_wrap=True)
            else:
                self.console.print(Text(message, style=style), soft_wrap=True)

    def _emit_json(self, event: str, **fields: Any) -> None:
        if self.mode != "json":
            return
        record = {"event": event, "time": round(time.time(), 3), **fields}
        with self._lock:
            self.stream.write(json.dumps(record, default=str) + "\n")
            self.stream.flush()


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
