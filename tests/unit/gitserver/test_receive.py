"""receive.py: push commands from pkt-lines, and which updates hold afterwards."""

from __future__ import annotations

import gzip

import pytest

from stacks.gitserver.receive import (
    CommandParser,
    ProtocolError,
    RefCommand,
    accepted,
    changed,
    parse_for_each_ref,
)

ZERO = "0" * 40
A = "a" * 40
B = "b" * 40
C = "c" * 40


def pkt(text: bytes) -> bytes:
    return f"{len(text) + 4:04x}".encode() + text


def push_body(*lines: bytes, pack: bytes = b"PACK\x00\x00\x00\x02garbage") -> bytes:
    return b"".join(pkt(line) for line in lines) + b"0000" + pack


FIRST = f"{ZERO} {A} refs/heads/main".encode() + b"\0report-status side-band-64k agent=git/2\n"
SECOND = f"{A} {B} refs/heads/feature\n".encode()


def test_parses_commands_and_capabilities() -> None:
    parser = CommandParser()
    assert parser.feed(push_body(FIRST, SECOND))
    assert parser.commands == [
        RefCommand(ref="refs/heads/main", old=ZERO, new=A),
        RefCommand(ref="refs/heads/feature", old=A, new=B),
    ]
    assert "report-status" in parser.capabilities
    assert "side-band-64k" in parser.capabilities


def test_parses_byte_by_byte() -> None:
    parser = CommandParser()
    body = push_body(FIRST, SECOND)
    done = [parser.feed(body[i : i + 1]) for i in range(len(body))]
    assert done.index(True) == body.index(b"0000PACK") + 3
    assert len(parser.commands) == 2


def test_gzip_body() -> None:
    parser = CommandParser(gzip=True)
    compressed = gzip.compress(push_body(FIRST, SECOND))
    for start in range(0, len(compressed), 7):
        parser.feed(compressed[start : start + 7])
    assert parser.done
    assert [c.ref for c in parser.commands] == ["refs/heads/main", "refs/heads/feature"]


def test_skips_shallow_lines() -> None:
    parser = CommandParser()
    parser.feed(push_body(f"shallow {C}\n".encode(), FIRST))
    assert parser.commands == [RefCommand(ref="refs/heads/main", old=ZERO, new=A)]


def test_incomplete_body_is_not_done() -> None:
    parser = CommandParser()
    assert not parser.feed(pkt(FIRST))
    assert parser.commands == [RefCommand(ref="refs/heads/main", old=ZERO, new=A)]


@pytest.mark.parametrize(
    "body",
    [
        b"zzzz",
        pkt(b"not a command\n") + b"0000",
        pkt(b"push-cert\0caps\n") + b"0000",
        pkt(f"{ZERO} nothex refs/heads/x\n".encode()) + b"0000",
        b"0001",
    ],
)
def test_rejects_what_is_not_a_command_list(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        CommandParser().feed(body)


def test_accepted_keeps_only_updates_that_hold() -> None:
    commands = [
        RefCommand("refs/heads/main", A, B),  # accepted
        RefCommand("refs/heads/lost", A, C),  # someone else won: ref is elsewhere
        RefCommand("refs/heads/gone", A, ZERO),  # delete: accepted (no longer there)
        RefCommand("refs/heads/kept", A, ZERO),  # delete refused: still there
        RefCommand("refs/heads/new", ZERO, A),  # create refused: not there
    ]
    refs_now = {"refs/heads/main": B, "refs/heads/lost": B, "refs/heads/kept": A}
    assert accepted(commands, refs_now) == [commands[0], commands[2]]


def test_changed_between_snapshots() -> None:
    before = {"refs/heads/main": A, "refs/heads/old": B}
    after = {"refs/heads/main": B, "refs/heads/new": C}
    assert changed(before, after) == [
        RefCommand("refs/heads/main", A, B),
        RefCommand("refs/heads/new", ZERO, C),
        RefCommand("refs/heads/old", B, ZERO),
    ]


def test_parse_for_each_ref() -> None:
    output = f"{A} refs/heads/main\n{B} refs/tags/v1\n\n"
    assert parse_for_each_ref(output) == {"refs/heads/main": A, "refs/tags/v1": B}
