"""What checkpointing costs: the engine's max rate with ``serve --replay`` against without it.

Both engines take their events the same way, so the only difference is the replay side: a real
``brokerflow relay`` subprocess (fresh journal) between the benchmark's publisher and a real
``brokerflow serve`` (fresh SQLite file, the bench's world) that ``--events-connect``s to the
relay's PUB. One engine also gets ``--replay`` to the relay's replay endpoint: it asks
``SOURCES``, keeps per-source cursors, counts each event's outstanding work and stores a
checkpoint with the run-log batches. The cost is ``1 − with ÷ without`` (target ≤ 10 %), and
beside it the engine's CPU per event (``/proc``), with ÷ without − 1, which a shared machine's
load moves far less than events/s.

Each engine runs ``bench.measure_max_rate`` on its own relay, one after the other (without, then
with), so each has the machine to itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from brokerflow.app.benchengine import EngineUnderTest, load_world, measure_max_rate
from brokerflow.app.benchrelay import start_relay, stop_relay
from brokerflow.app.benchwire import free_port

__all__ = ["measure_replay_cost", "measure_via_relay"]


World = Callable[[EngineUnderTest], Any]


def measure_via_relay(count: int, folder: str, world: World, replay: bool) -> dict[str, Any]:
    """Publisher → relay → ``serve`` (with or without ``--replay``): the engine's max rate.

    ``world`` loads rules and reference data into the engine (the bench's: ``load_world``).
    """
    mode = "with_replay" if replay else "without_replay"
    upstream, publish = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    relay, replay_endpoint = start_relay(folder, f"relay-{mode}", ["--from-bind", upstream],
                                         ["--publish-bind", publish])
    engine: EngineUnderTest | None = None
    try:
        engine = EngineUnderTest(folder, f"engine-{mode}", events_connect=publish,
                                 replay=replay_endpoint if replay else None, publish_to=upstream)
        world(engine)
        cpu_before = engine.cpu_s()
        figures = measure_max_rate(engine, count, folder)
        figures["cpu_us_per_event"] = round((engine.cpu_s() - cpu_before) * 1e6 / max(1, count), 1)
        bus = engine.stats()["bus"]
        figures.update({"mode": mode, "peak_rss_mb": engine.peak_rss_mb(),
                        **{name: bus.get(name, 0) for name in ("replayed", "gaps_filled", "gaps_open", "gaps")}})
        if replay:  # live events dropped while catching up come back as replayed: not lost
            figures["lost"] = max(0, count - figures["received"] - figures["replayed"])
    finally:
        code = engine.stop() if engine is not None else None
        stop_relay(relay)
    figures["stop_exit_code"] = code
    return figures


def measure_replay_cost(count: int, folder: str, webhook_url: str, world: World | None = None) -> dict[str, Any]:
    """Without, then with ``--replay``, each on the bench's world unless ``world`` says otherwise."""
    world = world or (lambda engine: load_world(engine, webhook_url))
    without = measure_via_relay(count, folder, world, replay=False)
    with_replay = measure_via_relay(count, folder, world, replay=True)
    cost = 1 - with_replay["events_per_s"] / max(1, without["events_per_s"])
    cpu_cost = with_replay["cpu_us_per_event"] / max(0.1, without["cpu_us_per_event"]) - 1
    return {"without": without, "with": with_replay, "cost": round(cost, 3), "cpu_cost": round(cpu_cost, 3)}
