"""The one home of each small rule: Go durations, backoff, conditions (pure)."""

from __future__ import annotations

import pytest

from stacks.kube import backoff, conditions, durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("1h0m0s", 3600.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("500ms", 0.5),
        ("2160h", 2160 * 3600.0),
        (".5s", 0.5),
        ("100us", 1e-4),
        ("100µs", 1e-4),
        ("+5s", 5.0),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert durations.parse_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "h", "10", "1d", "1 hour", "5m garbage", "-5s"])
def test_go_durations_reject(text: str) -> None:
    with pytest.raises(durations.DurationError):
        durations.parse_seconds(text)


def test_bare_seconds_only_when_asked() -> None:
    assert durations.parse_seconds("42", bare_seconds=True) == 42.0
    assert durations.parse_seconds("3m", bare_seconds=True) == 180.0


def test_backoff_doubles_from_one_second_and_resets() -> None:
    assert [backoff.delay(n, 300) for n in (1, 2, 3, 9, 10)] == [1, 2, 4, 256, 300]
    assert backoff.delay(30, 1e9) == 1024  # the exponent stops at 10
    keys: backoff.Backoff[str] = backoff.Backoff(cap=30)
    assert [keys.failed("a") for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert keys.failed("b", cap=1) == 1
    keys.reset()
    assert keys.failed("a") == 1


def test_condition_keeps_transition_time_until_the_status_flips() -> None:
    first = conditions.condition("Ready", True, "Ok", "fine", "T1", [], 3)
    assert first["lastTransitionTime"] == "T1" and first["observedGeneration"] == 3
    same = conditions.condition("Ready", True, "Ok", "still", "T2", [first])
    assert same["lastTransitionTime"] == "T1" and "observedGeneration" not in same
    flipped = conditions.condition("Ready", False, "Bad", "x" * 5000, "T3", [same])
    assert flipped["lastTransitionTime"] == "T3" and len(flipped["message"]) == 2000
    listed = conditions.set_condition([{"type": "Ready"}, {"type": "Other"}], flipped)
    assert [c["type"] for c in listed] == ["Other", "Ready"]
    assert conditions.find(listed, "Ready") == flipped
    moved = first | {"lastTransitionTime": "T9"}
    assert conditions.status_equal({"conditions": [first]}, {"conditions": [moved]})
    assert not conditions.status_equal({"conditions": [first]}, {"conditions": [same]})
