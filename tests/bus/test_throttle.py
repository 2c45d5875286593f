"""The log throttle: one line per interval, and the next line tells how many were held back."""

from __future__ import annotations

from brokerflow.bus._throttle import LogThrottle, held_note


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_line_per_interval_and_the_next_says_how_many_were_held_back():
    clock = Clock()
    throttle = LogThrottle(10.0, clock=clock)
    assert throttle.ready() == 0
    assert [throttle.ready() for _ in range(3)] == [None, None, None]
    clock.now += 9.9
    assert throttle.ready() is None
    clock.now += 0.1
    assert throttle.ready() == 4
    assert throttle.ready() is None
    clock.now += 10
    assert throttle.ready() == 1


def test_a_burst_of_lines_per_window_then_the_rest_are_held_back():
    clock = Clock()
    throttle = LogThrottle(10.0, burst=3, clock=clock)
    assert [throttle.ready() for _ in range(5)] == [0, 0, 0, None, None]
    clock.now += 10
    assert [throttle.ready() for _ in range(4)] == [2, 0, 0, None]


def test_the_note_is_empty_when_nothing_was_held_back():
    assert held_note(0) == ""
    assert held_note(3) == " (3 more since the last such line, not logged)"
