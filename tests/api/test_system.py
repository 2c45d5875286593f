"""Ping, the definitions and the stats."""

from __future__ import annotations

import brokerflow
from brokerflow.workflow.catalog import definitions
from tests.api.conftest import NOW_MS


def test_ping_needs_no_token_and_ignores_a_bad_one(api):
    expected = {"pong": True, "version": brokerflow.__version__}
    assert api.body("Ping", token=None) == expected
    assert api.body("Ping", token="bf_not-a-token") == expected


def test_definitions_are_the_catalog(api):
    body = api.body("MngGetWorkflowDefinitions")
    assert body == definitions()
    assert {"triggers", "conditions", "actions"} <= set(body)
    assert "deposit.created" in body["triggers"]


def test_stats_without_an_engine_come_from_storage(api):
    ids = list(api.services.store.runs.allocate_ids(2))
    api.services.store.runs.write_many([
        {"id": ids[0], "status": "success", "actions": [], "started_at": NOW_MS, "finished_at": NOW_MS},
        {"id": ids[1], "status": "skipped", "actions": [], "started_at": NOW_MS, "finished_at": NOW_MS},
    ])
    body = api.body("MngGetStats")
    assert body["runs"] == {"logged": 2, "success": 1, "failed": 0, "skipped": 1}
    assert body["bus"] == {"received": 0, "malformed": 0, "duplicates": 0, "gaps": 0}
    assert body["actors"] == []
    assert body["uptime_s"] == 0


def test_stats_come_from_the_engine_when_it_provides_them(api):
    stats = {"actors": [{"name": "router", "kind": "router", "mailbox": 0, "processed": 3, "failed": 0}],
             "bus": {"received": 3, "malformed": 0, "duplicates": 0, "gaps": 0},
             "runs": {"logged": 0, "success": 0, "failed": 0, "skipped": 0}, "uptime_s": 1.5}
    api.services.stats_provider = lambda: stats
    assert api.body("MngGetStats") == stats
