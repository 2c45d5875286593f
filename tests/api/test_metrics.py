"""``GET /metrics`` and ``GET /ready`` on a real engine's gateway, read as Prometheus and a probe do."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import wait_until
from tests.runtime.conftest import make_runtime, notify, receiver, webhook  # noqa: F401 - fixtures

REQUIRED = ("brokerflow_events_received", "brokerflow_events_malformed", "brokerflow_runs",
            "brokerflow_event_to_run_seconds", "brokerflow_actor_mailbox", "brokerflow_webhook_deliveries")


def scrape(url: str) -> dict[str, dict[tuple, float]]:
    """``{sample name: {sorted label items: value}}`` of one scrape."""
    reply = requests.get(f"{url}/metrics", timeout=5)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"].startswith("text/plain; version=")
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_metrics_show_the_events_runs_latency_actors_and_webhooks_of_the_stats(make_runtime, receiver):  # noqa: F811
    runtime = make_runtime(http="127.0.0.1:0")
    url = runtime.engine.http.url
    families = {family.name for family in text_string_to_metric_families(requests.get(f"{url}/metrics",
                                                                                       timeout=5).text)}
    assert set(REQUIRED) <= families
    runtime.rule("deposit.created", [notify("hi"), webhook(receiver.url("/hook"))], name="hooked")
    runtime.rule("deposit.created", [webhook(receiver.url("/status/500"), retries=0)], name="failing")
    runtime.deposit(1001, 100)
    runtime.deposit(1001, 50)
    runtime.publish_raw([b"trade.push", b"\xc1 not msgpack"])
    runtime.settle()
    runtime.wait_runs(4)
    samples = scrape(url)
    stats = runtime.stats()
    assert samples["brokerflow_events_received_total"][()] == stats["bus"]["received"] == 3
    assert samples["brokerflow_events_malformed_total"][()] == 1
    runs = samples["brokerflow_runs_total"]
    assert runs[(("status", "success"),)] == 2 and runs[(("status", "failed"),)] == 2
    assert samples["brokerflow_event_to_run_seconds_count"][()] == 4
    assert samples["brokerflow_event_to_run_seconds_bucket"][(("le", "+Inf"),)] == 4
    assert 0 <= samples["brokerflow_event_to_run_seconds_sum"][()] < 60
    deliveries = samples["brokerflow_webhook_deliveries_total"]
    assert deliveries == {(("outcome", "success"),): 2, (("outcome", "failed"),): 2}
    mailboxes = samples["brokerflow_actor_mailbox"]
    assert (("actor", "router"), ("kind", "router")) in mailboxes
    processed = samples["brokerflow_actor_processed_total"]
    router = next(a for a in stats["actors"] if a["name"] == "router")
    assert processed[(("actor", "router"), ("kind", "router"))] >= router["processed"] > 0


def test_ready_answers_200_then_503_naming_an_actor_that_stopped(make_runtime):  # noqa: F811
    runtime = make_runtime(world=False, http="127.0.0.1:0")
    url = runtime.engine.http.url
    reply = requests.get(f"{url}/ready", timeout=5)
    assert (reply.status_code, reply.json()) == (200, {"status": "ready"})
    runtime.engine.pipeline.refs["notifier"].stop(block=True, timeout=5)
    reply = requests.get(f"{url}/ready", timeout=5)
    assert reply.status_code == 503
    assert reply.json() == {"status": "not ready", "reasons": ["notifier is not running"]}
    assert requests.get(f"{url}/health", timeout=5).status_code == 200  # liveness is another question
    wait_until(lambda: requests.get(f"{url}/metrics", timeout=5).status_code == 200)
