"""``GET /metrics``: the engine's stats in the Prometheus text format, via prometheus-client.

The stats snapshot (``MngGetStats``) is the one source: a custom collector turns it into
metric families at scrape time, so there is no second set of counters that could drift from
what ``brokerflow stats`` shows. The event-to-run latency histogram is the run log's own
(``actors.runlog.RunLatency``), read the same way. Each gateway has a registry of its own, so
two engines in one process (tests) never share metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST", "StatsCollector", "exposition", "registry_for"]

# bus counters with names of their own (PROTOCOL section 9); the others are brokerflow_bus_<key>_total
EVENT_COUNTERS = {"received": "events received from the bus",
                  "malformed": "frames refused as malformed (counted, logged once, skipped)",
                  "duplicates": "events dropped as duplicates of an id or (source, seq)",
                  "gaps": "events missing from a source's sequence"}
NO_LATENCY = {"bounds_ms": [], "counts": [0], "sum_ms": 0}  # without a run log: an empty histogram
PROCESS_GAUGES = {"activations": "processes loaded into memory", "passivations": "processes written back and evicted"}


def _actor_families(actors: list[dict[str, Any]]) -> Iterator[Metric]:
    labels = ["actor", "kind"]
    mailbox = GaugeMetricFamily("brokerflow_actor_mailbox", "messages waiting in the actor's mailbox", labels=labels)
    processed = CounterMetricFamily("brokerflow_actor_processed", "items the actor handled", labels=labels)
    failed = CounterMetricFamily("brokerflow_actor_failed", "messages the actor failed on (logged)", labels=labels)
    mean = GaugeMetricFamily("brokerflow_actor_mean_seconds", "mean handling time per item", labels=labels)
    active = GaugeMetricFamily("brokerflow_processes_active", "Workflow Machine processes in memory",
                               labels=["actor"])
    counted = {key: CounterMetricFamily(f"brokerflow_process_{key}", text, labels=["actor"])
               for key, text in PROCESS_GAUGES.items()}
    for actor in actors:
        names = [str(actor.get("name")), str(actor.get("kind"))]
        mailbox.add_metric(names, actor.get("mailbox", 0))
        processed.add_metric(names, actor.get("processed", 0))
        failed.add_metric(names, actor.get("failed", 0))
        mean.add_metric(names, actor.get("mean_ms", 0.0) / 1000.0)
        if actor.get("kind") == "process":
            active.add_metric(names[:1], actor.get("active", 0))
            for key, family in counted.items():
                family.add_metric(names[:1], actor.get(key, 0))
    yield from (mailbox, processed, failed, mean, active, *counted.values())


def _webhook_family(actors: list[dict[str, Any]]) -> Metric:
    family = CounterMetricFamily("brokerflow_webhook_deliveries", "webhook requests finished, by outcome",
                                 labels=["outcome"])
    webhooks = [actor for actor in actors if actor.get("kind") == "webhook"]
    for outcome in ("success", "failed"):
        family.add_metric([outcome], sum(actor.get(f"deliveries_{outcome}", 0) for actor in webhooks))
    return family


def _bus_families(bus: dict[str, Any]) -> Iterator[Metric]:
    for key, text in EVENT_COUNTERS.items():
        yield CounterMetricFamily(f"brokerflow_events_{key}", text, value=bus.get(key, 0))
    for key, value in sorted(bus.items()):
        if key not in EVENT_COUNTERS and isinstance(value, (int, float)):
            yield CounterMetricFamily(f"brokerflow_bus_{key}", f"bus and router counter {key!r} (docs/operations.md)",
                                      value=value)


def _runs_families(runs: dict[str, Any]) -> Iterator[Metric]:
    family = CounterMetricFamily("brokerflow_runs", "rule and state runs logged, by status", labels=["status"])
    for status, value in runs.items():
        if status != "logged":
            family.add_metric([status], value)
    yield family


def _latency_family(latency: dict[str, Any]) -> Metric:
    cumulative, buckets = 0, []
    bounds = [*(b / 1000.0 for b in latency["bounds_ms"]), float("inf")]
    for bound, count in zip(bounds, latency["counts"], strict=True):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
    return HistogramMetricFamily("brokerflow_event_to_run_seconds", "from the event's ts to its run being logged",
                                 buckets=buckets, sum_value=latency["sum_ms"] / 1000.0)


class StatsCollector(Collector):
    """Builds every brokerflow metric from one stats snapshot per scrape."""

    def __init__(self, stats: Callable[[], dict[str, Any]],
                 latency: Callable[[], dict[str, Any] | None] | None = None) -> None:
        self.stats, self.latency = stats, latency

    def collect(self) -> Iterator[Metric]:
        stats = self.stats()
        actors = list(stats.get("actors", []))
        yield from _bus_families(dict(stats.get("bus", {})))
        yield from _runs_families(dict(stats.get("runs", {})))
        yield from _actor_families(actors)
        yield _webhook_family(actors)
        yield GaugeMetricFamily("brokerflow_uptime_seconds", "seconds since the engine started",
                                value=stats.get("uptime_s", 0))
        latency = self.latency() if self.latency is not None else None
        yield _latency_family(latency or NO_LATENCY)


def registry_for(stats: Callable[[], dict[str, Any]],
                 latency: Callable[[], dict[str, Any] | None] | None = None) -> CollectorRegistry:
    """A registry of its own: the stats collector plus the process's CPU, memory and file descriptors."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatsCollector(stats, latency))
    ProcessCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
