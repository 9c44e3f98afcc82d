"""The live view of `platform up` in a real pseudo-terminal of 80 and 100 columns: a
detail line wider than the terminal is cut, and the icon, stage and time columns stay;
`--only STAGE` says which stage ran instead of "Platform ... is up".

The output goes through a minimal terminal emulator (carriage return, newline, cursor
up, erase line; colours dropped) to get the screen a user is left with."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
from pathlib import Path

import pytest

from tests.support.cli import PLATFORM

pytestmark = pytest.mark.integration

ESCAPE = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")


def screen(output: bytes) -> list[str]:
    """The lines left on the screen, as far as rich's live display moves the cursor."""
    text = output.decode(errors="replace")
    lines: list[list[str]] = [[]]
    row = col = 0
    position = 0
    while position < len(text):
        char = text[position]
        if char == "\x1b":
            found = ESCAPE.match(text, position)
            if found is None:
                position += 1
                continue
            argument, command = found.groups()
            if command == "A":
                row = max(0, row - int(argument or 1))
            elif command == "K" and argument == "2":
                lines[row] = []
            position = found.end()
            continue
        if char == "\r":
            col = 0
        elif char == "\n":
            row, col = row + 1, 0
            while len(lines) <= row:
                lines.append([])
        else:
            line = lines[row]
            line.extend(" " * (col + 1 - len(line)))
            line[col] = char
            col += 1
        position += 1
    return ["".join(line).rstrip() for line in lines]


def run_in_pty(args: list[str], columns: int, env: dict[str, str]) -> tuple[int, bytes]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    full_env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NO_COLOR")}
    full_env.update(env, TERM="xterm-256color")
    process = subprocess.Popen(
        [str(PLATFORM), *args], stdin=slave, stdout=slave, stderr=slave, env=full_env
    )
    os.close(slave)
    output = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(master)
    return process.wait(timeout=60), output


@pytest.mark.parametrize("columns", [80, 100])
def test_a_long_detail_never_takes_the_stage_columns(tmp_path: Path, columns: int) -> None:
    home = tmp_path / "home" / "someone" / ".platform"  # a normal home path
    kubeconfig = tmp_path / "home" / "someone" / ".kube" / "config-of-the-team"
    code, output = run_in_pty(
        ["up", "--only", "cluster", "--engine", "existing", "--kubeconfig", str(kubeconfig)],
        columns,
        {"PLATFORM_HOME": str(home)},
    )
    assert code == 1
    lines = screen(output)
    [row] = [line for line in lines if line.startswith("✗")]
    assert re.match(r"^✗\s+cluster\s+\d+\.\ds cannot load ", row), lines
    assert row.endswith("…") and len(row) <= columns, row
    assert any(line.startswith("Error: Cannot load") for line in lines)


def test_only_one_stage_says_which_ran_not_that_the_platform_is_up(tmp_path: Path) -> None:
    code, output = run_in_pty(
        ["up", "--only", "preflight", "--engine", "existing"],
        80,
        {"PLATFORM_HOME": str(tmp_path / "home")},
    )
    lines = screen(output)
    assert code == 0, lines
    assert not any("is up" in line for line in lines), lines
    assert any(line.startswith("Stage preflight of platform 'local': done") for line in lines)
    assert any(re.match(r"^✓\s+preflight\s+\d+\.\ds ", line) for line in lines), lines
