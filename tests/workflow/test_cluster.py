"""The cluster's pure rules: the fair share of partitions, and what a takeover skips."""

from __future__ import annotations

import pytest

from brokerflow.workflow.cluster import Skips, Window, share_plan, target_share


@pytest.mark.parametrize("members", [1, 2, 3, 5, 64, 65])
def test_targets_add_up_to_every_partition_and_differ_by_at_most_one(members):
    ids = [f"m{i:02d}" for i in range(members)]
    targets = [target_share(member, ids, 64) for member in ids]
    assert sum(targets) == 64
    assert max(targets) - min(targets) <= 1


def test_a_lone_member_takes_every_free_partition():
    plan = share_plan("a", ["a"], {}, 8)
    assert plan.target == 8 and sorted(plan.acquire) == list(range(8)) and plan.release == ()


def test_a_second_member_makes_the_first_release_its_highest_partitions_down_to_its_share():
    owners = dict.fromkeys(range(8), "a")
    first = share_plan("a", ["a", "b"], owners, 8)
    assert first.release == (4, 5, 6, 7) and first.acquire == ()
    second = share_plan("b", ["a", "b"], owners, 8)
    assert second.acquire == () and second.release == ()  # nothing free yet: it waits
    owners.update(dict.fromkeys(first.release, None))
    assert sorted(share_plan("b", ["a", "b"], owners, 8).acquire) == [4, 5, 6, 7]


def test_members_starting_together_ask_for_different_partitions_first():
    a = share_plan("a", ["a", "b"], {}, 8).acquire
    b = share_plan("b", ["a", "b"], {}, 8).acquire
    assert set(a[:4]).isdisjoint(b[:4])


def test_a_dead_members_leases_count_as_taken_until_they_expire():
    owners = {p: ("dead" if p < 4 else "a") for p in range(8)}
    plan = share_plan("a", ["a"], owners, 8)  # "dead" has no heartbeat but its leases are live
    assert plan.acquire == () and plan.release == ()
    owners.update(dict.fromkeys(range(4), None))  # expired
    assert sorted(share_plan("a", ["a"], owners, 8).acquire) == [0, 1, 2, 3]


def test_plans_are_deterministic_and_never_exceed_the_target():
    owners = {0: "b", 1: "c", 5: "a"}
    for _ in range(3):
        plan = share_plan("a", ["c", "a", "b"], owners, 10)
        assert plan == share_plan("a", ["a", "b", "c"], owners, 10)
        assert len(plan.acquire) + 1 == plan.target == 4
        assert not set(plan.acquire) & set(owners)


def test_skips_the_partitions_already_routed_in_a_window_and_a_gained_partition_up_to_its_checkpoint():
    window = Window(low=10, high=20, done=frozenset({1, 2}), holes=((14, 15),))
    skips = Skips().with_takeover({7}, {"mt5": {7: 12}}, {"mt5": window})
    assert skips.skip("mt5", 10, 1) and skips.skip("mt5", 19, 2)
    assert not skips.skip("mt5", 14, 1)  # a hole: never routed here
    assert not skips.skip("mt5", 20, 1)  # past the window: new
    assert skips.skip("mt5", 12, 7) and not skips.skip("mt5", 13, 7)  # the last owner did up to 12
    assert not skips.skip("other", 10, 1)
    assert not Skips()


def test_windows_accumulate_and_are_let_go_once_the_cursor_passed_them():
    first = Skips().with_takeover({3}, {"s": {3: 4}}, {"s": Window(5, 30, frozenset({1}))})
    second = first.with_takeover({4}, {"s": {4: 2}}, {"s": Window(3, 12, frozenset({1, 3}))}, positions={"s": 12})
    assert second.skip("s", 20, 1)  # the first window still holds: the cursor is at 12
    assert second.skip("s", 5, 3) and not second.skip("s", 20, 3)
    third = second.with_takeover(set(), {}, {}, positions={"s": 31})
    assert not third.windows and third.skip("s", 4, 3)
    assert not third.without({3}).skip("s", 4, 3)
