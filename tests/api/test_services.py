"""Services: listeners as hooks that never stop a command, stats, engine-provided handlers."""

from __future__ import annotations

import logging

import pytest

from brokerflow.errors import Internal
from tests.api.conftest import NOW_MS, deposit_rule


def test_a_failing_listener_is_logged_and_neither_the_others_nor_the_command_stop(api, caplog):
    heard = []

    def broken():
        raise RuntimeError("listener down")

    api.services.rules_listeners[:] = [broken, lambda: heard.append("rules")]
    with caplog.at_level(logging.ERROR, logger="brokerflow.api.services"):
        reply = api.call("MngAddWorkflowRule", {"rule": deposit_rule()})
    assert reply["success"] is True
    assert heard == ["rules"]
    assert "listener down" in caplog.text


def test_reference_and_flow_listeners_get_what_changed(services):
    seen = []
    services.reference_listeners.append(lambda kind, record: seen.append((kind, record)))
    services.flow_listeners.append(lambda name: seen.append(name))
    services.reference_changed("rate", {"currency": "EUR", "usd": 1.1})
    services.flows_changed("onboarding")
    assert seen == [("rate", {"currency": "EUR", "usd": 1.1}), "onboarding"]
    assert services.refs.rates["EUR"]["usd"] == 1.1  # the fixture's replica listener ran too


def test_stats_uptime_counts_from_construction(store):
    from brokerflow.api.services import Services
    from brokerflow.workflow.reference import ReferenceData

    clock = iter([NOW_MS, NOW_MS + 2500])
    services = Services(store, ReferenceData(), now_ms=lambda: next(clock))
    assert services.started_ms == NOW_MS
    assert services.stats()["uptime_s"] == 2.5


@pytest.mark.parametrize(
    ("call", "what"),
    [
        (lambda s: s.process("START", {}, None), "the Workflow Machine"),
        (lambda s: s.before("customer", "create", {}, None), "before-hooks"),
        (lambda s: s.exec_rule({}, None, None), "manual rule execution"),
        (lambda s: s.sink("leads", {}), "sink routes"),
    ],
)
def test_unset_engine_handlers_raise_internal_naming_what_is_missing(services, call, what):
    with pytest.raises(Internal, match=f"not available in this process: {what}"):
        call(services)
