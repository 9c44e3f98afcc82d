"""Pure parts of the git server's defences: sizes and the scratch budget, log escaping,
the failed-login throttle, and gzip body inflation (stacks/gitserver/limits.py,
logsafe.py, throttle.py, backend.py)."""

from __future__ import annotations

import gzip
import io
import logging

import pytest

from stacks.gitserver.backend import BadBody, _inflate
from stacks.gitserver.limits import GiB, MiB, ScratchBudget, parse_size
from stacks.gitserver.logsafe import EscapingFilter, escape
from stacks.gitserver.receive import CommandParser, ProtocolError
from stacks.gitserver.throttle import LoginThrottle


def test_parse_size() -> None:
    assert parse_size("2Gi") == 2 * GiB
    assert parse_size("1792Mi") == 1792 * MiB
    assert parse_size("500M") == 500_000_000
    assert parse_size("1048576") == MiB
    with pytest.raises(ValueError):
        parse_size("lots")


def test_scratch_budget_bounds_the_total() -> None:
    budget = ScratchBudget(10)
    assert budget.reserve(6)
    assert not budget.reserve(5)
    assert budget.used == 6
    budget.release(6)
    assert budget.reserve(10)


def test_escape_keeps_one_line() -> None:
    assert escape("/x\r\nFORGED") == "/x\\r\\nFORGED"
    assert escape("a\x1b[31m\x00\x85\u2028") == "a\\x1b[31m\\x00\\x85\\u2028"
    assert escape("back\\slash") == "back\\\\slash"
    assert escape("x" * 10, limit=4) == "xxxx..."


def test_escaping_filter_rewrites_any_record() -> None:
    record = logging.LogRecord("waitress", logging.ERROR, "", 0, "serving %s", ("/a\nb",), None)
    EscapingFilter().filter(record)
    assert record.getMessage() == "serving /a\\nb"


def test_throttle_counts_failures_per_client_and_refills() -> None:
    now = [0.0]
    throttle = LoginThrottle(burst=3, window=60.0, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("a") == 0
        throttle.failed("a")
    assert throttle.retry_after("a") == pytest.approx(20.0)
    assert throttle.retry_after("b") == 0  # another client is unaffected
    now[0] = 20.0  # one failure's worth refilled
    assert throttle.retry_after("a") == 0
    assert LoginThrottle(burst=0).retry_after("a") == 0  # 0 disables it


def test_inflate_refuses_broken_truncated_and_oversized_gzip() -> None:
    good = gzip.compress(b"0000" * 100)
    assert _inflate(io.BytesIO(good), len(good), 1000).read() == b"0000" * 100
    with pytest.raises(BadBody, match="not valid gzip"):
        _inflate(io.BytesIO(b"not gzip"), 8, 1000)
    with pytest.raises(BadBody, match="cut short"):
        _inflate(io.BytesIO(good[:-8]), len(good) - 8, 1000)
    bomb = gzip.compress(b"\0" * MiB)
    with pytest.raises(BadBody, match="more than"):
        _inflate(io.BytesIO(bomb), len(bomb), 1000)


def test_command_parser_turns_bad_gzip_into_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="gzip"):
        CommandParser(gzip=True).feed(b"\x1f\x8b not gzip")
