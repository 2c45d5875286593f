"""Which partition a cooldown or window key belongs to, and replacing the state of gained keys (pure)."""

from __future__ import annotations

from brokerflow.workflow.partitions import partition_key, partition_of
from brokerflow.workflow.rules.cooldown import Cooldowns, CooldownSpec
from brokerflow.workflow.rules.statekeys import StateKeys, key_value, state_partition
from brokerflow.workflow.rules.windows import StreamPlan, Windows, key_text

ACCOUNTS = {1001: {"login": 1001, "customer_id": 7}, 1002: {"login": 1002}}
LINKS = {login: account.get("customer_id") for login, account in ACCOUNTS.items()}


def test_key_texts_read_back_to_the_values_they_were_written_from() -> None:
    for value in (7, -3, 2**62, "7", "abc:def", "", 1.5, True, False):
        assert key_value(key_text(value)) == value
        assert type(key_value(key_text(value))) is type(value)
    sentinel = key_value(key_text(None))
    assert key_value("r:[1, 2]") is sentinel and key_value("n:x") is sentinel and key_value("junk") is sentinel


def test_a_customer_key_lives_in_the_partition_the_router_gives_that_customers_events() -> None:
    for customer in (7, 8, 12345, "ext-9"):
        routed = partition_of(partition_key("customer.push", {"id": customer}, ACCOUNTS), 64)
        assert state_partition("customer.id", key_text(customer), LINKS, 64) == routed


def test_a_login_key_follows_the_logins_customer_else_the_login_itself() -> None:
    for login in (1001, 1002, 5555):  # linked to customer 7, an account without customer, no account
        routed = partition_of(partition_key("trade.push", {"login": login}, ACCOUNTS), 64)
        assert state_partition("trade.login", key_text(login), LINKS, 64) == routed
        assert state_partition("account.login", key_text(login), LINKS, 64) == routed
    assert state_partition("trade.login", "n:1001", LINKS, 64) == partition_of("c:7", 64)
    assert state_partition("trade.login", "s:1001", LINKS, 64) == partition_of("l:1001", 64)  # as the router


def test_keys_spanning_customers_and_unreadable_keys_belong_to_no_partition() -> None:
    for field in ("account.group", "trade.symbol", "brand", "customer.country", "customer.email"):
        assert state_partition(field, "s:x", LINKS, 64) is None
    assert state_partition("customer.id", key_text(None), LINKS, 64) is None
    assert state_partition("customer.id", "r:[1]", LINKS, 64) is None


def test_state_keys_select_the_keys_of_the_gained_partitions_only() -> None:
    gained = {partition_of("c:7", 64)}
    keys = StateKeys(gained, 64, LINKS)
    assert keys.selects("customer.id", "n:7") and keys.selects("trade.login", "n:1001")
    other = next(c for c in range(8, 1000) if partition_of(f"c:{c}", 64) not in gained)
    assert not keys.selects("customer.id", key_text(other))
    assert not keys.selects("account.group", "s:g")
    assert keys.selects("customer.id", "n:7")  # memoised: the same answer again
    assert not StateKeys((), 64, LINKS)


PLAN = StreamPlan("deposit.created|customer.id|", "customer.id", None, 3_600_000,
                  (("_agg:c", "count", 3_600_000),))  # type: ignore[arg-type]


def count(windows: Windows, customer: int, ts: int) -> int:
    ctx = {"customer.id": customer}
    windows.observe(PLAN, ctx, ts)
    return ctx["_agg:c"]


def test_replacing_a_streams_gained_keys_takes_the_stored_entries_and_keeps_the_others() -> None:
    windows = Windows()
    windows.plan([PLAN])
    assert count(windows, 7, 1000) == 1  # stale: from when this process owned customer 7 before
    assert count(windows, 8, 1000) == 1  # kept: customer 8's partition stays here
    stored = [("n:7", 2000, None), ("n:7", 3000, None), ("n:8", 2500, None), ("n:9", 2600, None)]
    loaded = windows.replace(PLAN.name, lambda key: key in ("n:7", "n:9"), stored)
    assert loaded == 3
    assert windows.entry_count() == 4
    assert count(windows, 7, 4000) == 3  # the two stored and this one; the stale entry is gone
    assert count(windows, 8, 4000) == 2  # memory's, not the stored row (this process wrote it)
    assert count(windows, 9, 4000) == 2
    assert windows.replace("no such stream", lambda key: True, stored) == 0


def test_replacing_gained_cooldowns_takes_the_stored_time_and_drops_what_storage_does_not_have() -> None:
    cooldowns = Cooldowns()
    spec = CooldownSpec("customer.id", 3_600_000)
    assert cooldowns.decide(1, spec, {"customer.id": 7}, 1000) is not None  # stale
    assert cooldowns.decide(1, spec, {"customer.id": 8}, 1000) is not None  # gained, nothing stored
    assert cooldowns.decide(1, spec, {"customer.id": 9}, 1000) is not None  # kept
    gained = {"n:7", "n:8"}
    loaded = cooldowns.replace(lambda rule_id, key: key in gained, [(1, "n:7", 5000), (1, "n:9", 9000)])
    assert loaded == 1
    assert cooldowns.last(1, "n:7") == 5000 and cooldowns.last(1, "n:8") is None
    assert cooldowns.last(1, "n:9") == 1000  # not selected: memory's time stays
    assert cooldowns.decide(1, spec, {"customer.id": 7}, 6000) is None  # the last owner's run cools it
