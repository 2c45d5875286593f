"""What a cluster hand-over asks of ``Completion``: is everything taken below a point done, and
runs remembered at a takeover added to those remembered at start."""

from __future__ import annotations

from brokerflow.bus.completion import Completion


def test_done_below_waits_for_every_event_taken_before_the_point_and_not_for_later_ones():
    completion = Completion()
    completion.accept([("s", 1), ("s", 2)], {"s": 3})
    point = completion.positions()
    assert point == {"s": 3} and not completion.done_below(point)
    completion.accept([("s", 3)], {"s": 4})  # taken after the point: not waited for
    completion.settle([(("s", 1), -1), (("s", 2), -1)])
    assert completion.done_below(point)
    assert completion.done_below({"unknown": 5})  # a source never taken from has nothing in flight


def test_runs_remembered_at_a_takeover_add_to_those_remembered_at_start():
    completion = Completion()
    completion.remember_runs("s", {(5, 1)})
    completion.remember_runs("s", {(3, 2), (9, 1)})
    assert completion.ran(("s", 5), 1) and completion.ran(("s", 3), 2) and completion.ran(("s", 9), 1)
    assert completion.may_have_run(("s", 9)) and not completion.may_have_run(("s", 10))


def test_remembered_runs_are_forgotten_once_the_watermark_has_passed_them():
    completion = Completion()
    completion.remember_runs("s", {(5, 1), (7, 2)})
    completion.accept([("s", 6), ("s", 7)], {"s": 8})
    assert completion.watermarks() == {"s": 5} and completion.may_have_run(("s", 7))  # 6 and 7 still in flight
    completion.settle([(("s", 6), -1), (("s", 7), -1)])
    assert completion.watermarks() == {"s": 7}
    assert not completion.may_have_run(("s", 7)) and not completion.ran(("s", 5), 1)  # nothing of them is to come
    completion.remember_runs("s", {(9, 1)})  # a later takeover remembers afresh
    assert completion.ran(("s", 9), 1)
