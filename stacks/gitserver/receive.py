"""Pure logic of a push: receive-pack commands from pkt-lines, and which were accepted.

`backend.py` feeds the start of every `git-receive-pack` request body to a
`CommandParser` (the command list ends at the first flush packet, before the pack), and
after receive-pack exits asks `accepted()` which of those commands now hold: a ref that
now points at the pushed `new` value (or is gone, for a delete) was updated by this
push. This stays right under concurrent pushes, where comparing snapshots would not.
No I/O here; unit-tested in tests/unit/gitserver/.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass

# The command section is small; anything larger than this is not a push we understand.
MAX_COMMAND_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class RefCommand:
    """One `<old> <new> <ref>` line of a push."""

    ref: str
    old: str
    new: str

    @property
    def is_delete(self) -> bool:
        return set(self.new) == {"0"}


class ProtocolError(ValueError):
    """The request body does not start with a receive-pack command list."""


class CommandParser:
    """Incremental parser: `feed()` body bytes until `done`; then read `commands`.

    Understands plain and gzip-encoded bodies (`Content-Encoding: gzip`), `shallow`
    lines before the commands, and capabilities after the first NUL.
    """

    def __init__(self, gzip: bool = False) -> None:
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzip else None
        self._seen = 0
        self.commands: list[RefCommand] = []
        self.capabilities: frozenset[str] = frozenset()
        self.done = False

    def feed(self, data: bytes) -> bool:
        """Consume more of the body; True once the command list is complete."""
        if self.done or not data:
            return self.done
        if self._inflate is not None:
            try:
                data = self._inflate.decompress(data, MAX_COMMAND_BYTES)
            except zlib.error as error:  # the client's bytes: a protocol error, not a crash
                raise ProtocolError(f"invalid gzip body: {error}") from None
        self._buffer += data
        self._seen += len(data)
        self._parse()
        if not self.done and self._seen > MAX_COMMAND_BYTES:
            raise ProtocolError("receive-pack command list is larger than 4 MiB")
        return self.done

    def _parse(self) -> None:
        buffer = self._buffer
        while len(buffer) >= 4:
            try:
                length = int(buffer[:4], 16)
            except ValueError:
                raise ProtocolError("invalid pkt-line length") from None
            if length == 0:  # flush: end of the command list
                self.done = True
                return
            if length < 4:
                raise ProtocolError(f"unexpected special packet {length:04x} in commands")
            if len(buffer) < length:
                return
            line = bytes(buffer[4:length])
            del buffer[:length]
            self._line(line)

    def _line(self, line: bytes) -> None:
        if line.endswith(b"\n"):
            line = line[:-1]
        if line.startswith(b"shallow "):
            return
        if line.startswith(b"push-cert"):
            raise ProtocolError("signed pushes (push-cert) are not parsed")
        if b"\0" in line:
            line, _, caps = line.partition(b"\0")
            self.capabilities = frozenset(caps.decode("utf-8", "replace").split())
        parts = line.decode("utf-8", "replace").split(" ")
        if len(parts) != 3 or not all(_is_hex(p) for p in parts[:2]):
            raise ProtocolError("malformed receive-pack command")
        old, new, ref = parts
        self.commands.append(RefCommand(ref=ref, old=old, new=new))


def _is_hex(value: str) -> bool:
    return len(value) in (40, 64) and all(c in "0123456789abcdef" for c in value)


def accepted(commands: list[RefCommand], refs_now: Mapping[str, str]) -> list[RefCommand]:
    """The commands whose outcome holds now: ref == new, or ref gone for a delete."""
    return [
        command
        for command in commands
        if (
            command.ref not in refs_now
            if command.is_delete
            else refs_now.get(command.ref) == command.new
        )
    ]


def changed(before: Mapping[str, str], after: Mapping[str, str]) -> list[RefCommand]:
    """Ref updates between two snapshots (fallback when the commands could not be parsed)."""
    zero = "0" * 40
    updates = []
    for ref in sorted(set(before) | set(after)):
        old, new = before.get(ref), after.get(ref)
        if old != new:
            updates.append(RefCommand(ref=ref, old=old or zero, new=new or zero))
    return updates


def parse_for_each_ref(output: str) -> dict[str, str]:
    """`git for-each-ref --format='%(objectname) %(refname)'` output -> {ref: sha}."""
    refs = {}
    for line in output.splitlines():
        sha, _, ref = line.partition(" ")
        if ref:
            refs[ref] = sha
    return refs
