"""``serve --shards``: the option, what each shard runs with, how their stats add up."""

from __future__ import annotations

import os

import pytest

from brokerflow.app.cli import build_parser, settings_from
from brokerflow.app.shardlink import merge_stats
from brokerflow.app.shards import settings_from_env, settings_to_env, shard_settings
from brokerflow.errors import ValidationFailed
from brokerflow.settings import Settings, WebhookSecrets


@pytest.mark.parametrize(("text", "shards"), [("2", 2), ("1", 1), ("auto", max(1, os.cpu_count() or 1))])
def test_the_option_and_the_variable(text: str, shards: int) -> None:
    assert settings_from(build_parser().parse_args(["serve", "--shards", text])).shards == shards
    assert Settings.from_env({"BROKERFLOW_SHARDS": text}).shards == shards


@pytest.mark.parametrize("text", ["0", "-1", "two", "1.5"])
def test_a_wrong_count_is_refused(text: str, capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--shards", text])
    assert "--shards" in capsys.readouterr().err
    with pytest.raises(ValidationFailed, match="BROKERFLOW_SHARDS"):
        Settings.from_env({"BROKERFLOW_SHARDS": text})


def test_each_shard_gets_its_own_endpoints_and_only_shard_0_the_http_and_smtp_doors() -> None:
    settings = Settings(shards=3, http="127.0.0.1:9000", smtp_listen="127.0.0.1:2525", replay=("tcp://r:1",),
                        events_connect=("tcp://up:1",), webhook_secrets=WebhookSecrets({"crm": "s3cret"}))
    first, second = shard_settings(settings, 0, "/run/x"), shard_settings(settings, 1, "/run/x")
    assert (first.http, first.smtp_listen, second.http, second.smtp_listen) == ("127.0.0.1:9000", "127.0.0.1:2525",
                                                                                None, None)
    assert second.events_bind == () and second.events_connect == ("ipc:///run/x/events",)
    assert (second.api_bind, second.pub_bind) == ("ipc:///run/x/api-1", "ipc:///run/x/pub-1")
    assert (second.shard_index, second.shard_count, second.shards, second.replay) == (1, 3, 1, ("tcp://r:1",))
    back = settings_from_env(settings_to_env(second))
    assert back == second and dict(back.webhook_secrets) == {"crm": "s3cret"}


def test_stats_add_up_across_shards() -> None:
    def shard(received: int, actor: str, at_ms: int) -> dict:
        return {"stats": {"bus": {"received": received, "not_owned": received // 2}, "uptime_s": 1.0,
                          "actors": [{"name": actor, "processed": 1}], "runs": {"logged": 99},
                          "processes": {"active": 2}}, "pid": 100 + received, "at_ms": at_ms}

    merged = merge_stats(1, {0: shard(10, "router", 1_000), 1: shard(20, "router", 9_000)}, {"logged": 7}, 9_000)
    assert merged["bus"] == {"received": 30, "not_owned": 15}
    assert [a["name"] for a in merged["actors"]] == ["shard0/router", "shard1/router"]
    assert merged["runs"] == {"logged": 7} and merged["processes"] == {"active": 4}
    assert merged["shards"] == [{"index": 0, "pid": 110, "age_ms": 8_000, "stale": True},
                                {"index": 1, "pid": 120, "age_ms": 0, "stale": False}]
