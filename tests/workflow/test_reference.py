"""The reference replica: merging writes, event links (brand/account/customer), USD amounts."""

from __future__ import annotations

import pytest

from brokerflow.errors import ValidationFailed
from brokerflow.workflow.events import Event
from brokerflow.workflow.reference import ReferenceData


def trade(login=1001, cmd="OP_BALANCE_IN", profit=100.0, **extra):
    return Event("trade.push", "EV_RECORD_ADD", {"order": 1, "login": login, "cmd": cmd, "profit": profit,
                                                 **extra})


@pytest.fixture
def refs():
    refs = ReferenceData()
    refs.apply("group", {"group": "real\\eur", "brand": "acme", "currency": "EUR"})
    refs.apply("group", {"group": "real\\usd", "brand": "acme", "currency": "USD"})
    refs.apply("group", {"group": "demo\\zeta", "brand": "zeta", "currency": "EUR"})
    refs.apply("account", {"login": 1001, "group": "real\\eur", "customer_id": 7})
    refs.apply("account", {"login": 1002, "group": "real\\usd", "customer_id": None})
    refs.apply("customer", {"id": 7, "brand": "crm-brand", "email": "c@x.io", "assigned_manager_id": 3})
    refs.apply("rate", {"currency": "EUR", "usd": 1.1})
    return refs


class TestWrites:
    def test_apply_merges_partial_updates_and_returns_the_merged_record(self, refs):
        merged = refs.apply("customer", {"id": 7, "risk_level": "high"})
        assert merged == {"id": 7, "brand": "crm-brand", "email": "c@x.io", "assigned_manager_id": 3,
                          "risk_level": "high"}
        assert refs.customers[7] is merged

    def test_apply_replaces_the_record_dict_instead_of_mutating_it(self, refs):
        before = refs.customers[7]
        refs.apply("customer", {"id": 7, "email": "new@x.io"})
        assert before["email"] == "c@x.io"
        assert refs.customers[7]["email"] == "new@x.io"

    def test_rates_are_keyed_by_upper_case_currency(self, refs):
        refs.apply("rate", {"currency": "gbp", "usd": 1.25})
        assert refs.rates["GBP"] == {"currency": "GBP", "usd": 1.25}
        refs.remove("rate", "gbp")
        assert "GBP" not in refs.rates

    def test_templates_are_keyed_by_brand_and_step_code(self, refs):
        refs.apply("kyc_step_template", {"brand": "acme", "step_code": "POI", "level": 1})
        refs.apply("kyc_step_template", {"brand": "acme", "step_code": "POI", "title": "ID"})
        assert refs.templates[("acme", "POI")] == {"brand": "acme", "step_code": "POI", "level": 1,
                                                   "title": "ID"}
        refs.remove("kyc_step_template", ["acme", "POI"])
        assert refs.templates == {}

    @pytest.mark.parametrize(("kind", "key", "table"), [
        ("group", "real\\eur", "groups"), ("account", 1001, "accounts"), ("customer", 7, "customers"),
    ])
    def test_remove_drops_the_record(self, refs, kind, key, table):
        refs.remove(kind, key)
        assert key not in getattr(refs, table)
        refs.remove(kind, key)  # removing twice is harmless

    def test_load_replaces_the_whole_table(self, refs):
        refs.load("manager", [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
        refs.load("manager", [{"id": 3, "name": "c"}])
        assert list(refs.managers) == [3]
        refs.load("rate", [{"currency": "jpy", "usd": 0.0067}])
        assert refs.rates == {"JPY": {"currency": "JPY", "usd": 0.0067}}

    def test_unknown_kind_and_missing_key_are_refused(self, refs):
        with pytest.raises(ValidationFailed):
            refs.apply("planet", {"id": 1})
        with pytest.raises(ValidationFailed) as info:
            refs.apply("kyc_step_template", {"brand": "acme"})
        assert info.value.details == [{"path": "step_code", "message": "required"}]


class TestLinks:
    def test_trade_brand_comes_from_the_trading_group_not_the_customer(self, refs):
        assert refs.brand_of(trade()) == "acme"

    def test_trade_links_account_and_customer(self, refs):
        assert refs.account_of(trade())["group"] == "real\\eur"
        assert refs.customer_of(trade())["id"] == 7

    def test_trade_of_an_account_without_customer(self, refs):
        assert refs.brand_of(trade(1002)) == "acme"
        assert refs.customer_of(trade(1002)) is None

    @pytest.mark.parametrize("setup", ["no account", "no group"])
    def test_trade_brand_is_none_when_unresolvable(self, refs, setup):
        if setup == "no group":
            refs.apply("account", {"login": 1003, "group": "ghost"})
        assert refs.brand_of(trade(1003)) is None

    def test_account_push_uses_its_own_group_merged_with_the_replica(self, refs):
        moved = Event("account.push", "EV_RECORD_UPDATE", {"login": 1001, "group": "demo\\zeta"})
        assert refs.brand_of(moved) == "zeta"
        assert refs.account_of(moved) == {"login": 1001, "group": "demo\\zeta", "customer_id": 7}
        assert refs.customer_of(moved)["id"] == 7
        partial = Event("account.push", "EV_RECORD_UPDATE", {"login": 1001, "name": "Ann"})
        assert refs.brand_of(partial) == "acme"

    def test_account_push_of_a_new_account(self, refs):
        new = Event("account.push", "EV_RECORD_ADD", {"login": 2000, "group": "real\\usd", "customer_id": 7})
        assert refs.brand_of(new) == "acme" and refs.customer_of(new)["email"] == "c@x.io"

    def test_customer_push_brand_is_the_record_brand_or_the_replicas(self, refs):
        assert refs.brand_of(Event("customer.push", "EV_RECORD_ADD", {"id": 8, "brand": "zeta"})) == "zeta"
        update = Event("customer.push", "EV_RECORD_UPDATE", {"id": 7, "risk_level": "low", "brand": None})
        assert refs.brand_of(update) == "crm-brand"
        assert refs.customer_of(update)["risk_level"] == "low"
        assert refs.customer_of(update)["email"] == "c@x.io"
        assert refs.brand_of(Event("customer.push", "EV_RECORD_ADD", {"id": 9})) is None

    def test_kyc_step_brand_is_the_customers(self, refs):
        step = Event("kyc.step.push", None, {"customer_id": 7, "step_code": "POI", "status": "approved"})
        assert refs.brand_of(step) == "crm-brand"
        assert refs.customer_of(step)["id"] == 7
        unknown = Event("kyc.step.push", None, {"customer_id": 99, "step_code": "POI", "status": "approved"})
        assert refs.brand_of(unknown) is None and refs.customer_of(unknown) is None

    def test_reference_topics_link_to_nothing(self, refs):
        assert refs.brand_of(Event("rate.push", None, {"currency": "EUR", "usd": 1.0})) is None


class TestAmountUsd:
    def test_record_amount_usd_wins(self, refs):
        assert refs.amount_usd({"amount_usd": 55, "profit": 100}, refs.groups["real\\eur"]) == (55, None)

    def test_profit_converted_with_the_group_currency_rate(self, refs):
        value, reason = refs.amount_usd({"profit": -100.0}, refs.groups["real\\eur"])
        assert value == pytest.approx(110.0) and reason is None

    def test_usd_group_needs_no_rate(self, refs):
        assert refs.amount_usd({"profit": 250}, refs.groups["real\\usd"]) == (250, None)

    def test_unknown_rate_gives_a_reason(self, refs):
        refs.apply("group", {"group": "real\\chf", "brand": "acme", "currency": "chf"})
        assert refs.amount_usd({"profit": 1}, refs.groups["real\\chf"]) == (None, "no USD rate for CHF")

    @pytest.mark.parametrize(("record", "group", "reason"), [
        ({"profit": 1, "login": 5}, None, "no trading group known for login 5"),
        ({"profit": 1}, {"group": "g"}, "group g has no currency"),
        ({}, {"group": "g", "currency": "USD"}, "the record has no amount_usd and no profit"),
    ])
    def test_other_unknowns_give_reasons(self, refs, record, group, reason):
        assert refs.amount_usd(record, group) == (None, reason)

    @pytest.mark.parametrize("usd", [0, -1, None, True, "1.1"])
    def test_unusable_rates_count_as_unknown(self, refs, usd):
        refs.apply("rate", {"currency": "EUR", "usd": usd})
        assert refs.amount_usd({"profit": 1}, refs.groups["real\\eur"]) == (None, "no USD rate for EUR")


class TestListings:
    def test_enabled_managers_of_brand_or_without_brand(self, refs):
        refs.load("manager", [
            {"id": 5, "brand": "acme", "enabled": True},
            {"id": 2, "brand": "acme"},
            {"id": 3, "brand": "acme", "enabled": False},
            {"id": 4, "brand": "zeta", "enabled": True},
            {"id": 1, "enabled": True},
            {"id": 6, "brand": None, "enabled": None},
        ])
        assert [m["id"] for m in refs.enabled_managers("acme")] == [1, 2, 5, 6]
        assert [m["id"] for m in refs.enabled_managers("zeta")] == [1, 4, 6]

    def test_active_templates_of_brand(self, refs):
        refs.load("kyc_step_template", [
            {"brand": "acme", "step_code": "POA", "level": 2, "active": True},
            {"brand": "acme", "step_code": "POI", "level": 1},
            {"brand": "acme", "step_code": "OLD", "level": 1, "active": False},
            {"brand": "zeta", "step_code": "POI", "level": 1, "active": True},
        ])
        assert [t["step_code"] for t in refs.active_templates("acme")] == ["POI", "POA"]
        assert [t["step_code"] for t in refs.active_templates("none")] == []


class TestFlatViews:
    def test_the_view_of_a_stored_record_is_built_once(self, refs):
        customer = refs.customers[7]
        view = refs.flat("customer", customer)
        assert view["customer.email"] == "c@x.io" and view["customer.id"] == 7
        assert refs.flat("customer", customer) is view

    def test_a_replaced_record_gets_a_fresh_view(self, refs):
        old = refs.flat("customer", refs.customers[7])
        refs.apply("customer", {"id": 7, "email": "new@x.io"})
        assert old["customer.email"] == "c@x.io"
        assert refs.flat("customer", refs.customers[7])["customer.email"] == "new@x.io"

    def test_a_record_that_is_not_stored_is_flattened_but_not_cached(self, refs):
        merged = {**refs.accounts[1001], "name": "Ann"}
        assert refs.flat("account", merged)["account.name"] == "Ann"
        assert refs.flat("account", refs.accounts[1001]).get("account.name") is None

    def test_remove_and_load_drop_cached_views(self, refs):
        refs.flat("customer", refs.customers[7])
        refs.remove("customer", 7)
        assert refs._flat["customer"] == {}
        refs.load("account", [{"login": 1, "group": "g"}])
        refs.flat("account", refs.accounts[1])
        refs.load("account", [])
        assert refs._flat["account"] == {}
