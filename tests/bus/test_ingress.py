from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import msgpack
import pytest
import zmq

from brokerflow.bus.codec import encode
from brokerflow.bus.ingress import Handoff, Ingress
from brokerflow.bus.publisher import Publisher
from brokerflow.settings import Settings
from brokerflow.workflow.events import Event
from tests.conftest import tcp_endpoint, wait_until

RATE = {"currency": "EUR", "usd": 1.08}


class Collector:
    """A sink that keeps every batch it was handed."""

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []

    def __call__(self, events: list[Event]) -> None:
        self.batches.append(events)

    @property
    def events(self) -> list[Event]:
        return [event for batch in list(self.batches) for event in batch]


class Running:
    """An ingress looping in its own thread, stopped and closed at teardown."""

    def __init__(self, ingress: Ingress) -> None:
        self.ingress = ingress
        self.stop = threading.Event()
        self.thread = threading.Thread(target=ingress.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.ingress.close()


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    ctx = zmq.Context()
    yield ctx
    ctx.term()


@pytest.fixture
def start(context) -> Iterator:
    started: list[object] = []

    def _start(sink, event_store=None, max_ids=None, handoff=None, **settings_changes) -> Running:
        settings = Settings(**{"events_bind": ("tcp://127.0.0.1:0",), **settings_changes})
        window = {} if max_ids is None else {"max_ids": max_ids}
        running = Running(Ingress(settings, sink, event_store=event_store, context=context, handoff=handoff,
                                  **window))
        started.append(running)
        return running

    yield _start
    for running in reversed(started):
        running.close()


@pytest.fixture
def publisher(context) -> Iterator:
    made: list[Publisher] = []

    def _publisher(endpoint: str, source: str = "test", **kwargs) -> Publisher:
        pub = Publisher(endpoint, source, context=context, linger_ms=0, **kwargs)
        made.append(pub)
        assert pub.wait_subscribed(timeout_s=5), "the ingress never subscribed"
        return pub

    yield _publisher
    for pub in made:
        pub.close()


def raw(topic: str, **payload) -> list[bytes]:
    return encode(topic, {"record": RATE, **payload})


def test_five_thousand_events_are_all_delivered_in_order(start, publisher):
    sink = Collector()
    running = start(sink)
    pub = publisher(running.ingress.bound_endpoints()[0], source="burst")
    for n in range(5000):
        pub.publish("trade.push", {"order": n, "login": 1001, "cmd": "OP_BUY"}, event="EV_RECORD_ADD")
    wait_until(lambda: len(sink.events) == 5000)
    assert [event.seq for event in sink.events] == list(range(1, 5001))
    assert [event.record["order"] for event in sink.events] == list(range(5000))
    assert running.ingress.stats() == {"received": 5000, "malformed": 0, "duplicates": 0, "gaps": 0,
                                       "paused": 0, "disconnects": 0, "replayed": 0, "gaps_filled": 0,
                                       "gaps_open": 0, "replay_lost": 0, "replay_errors": 0}
    assert len(sink.batches) < 5000, "events should reach the sink in batches"


def test_bound_endpoints_report_the_real_port(start):
    running = start(Collector())
    (endpoint,) = running.ingress.bound_endpoints()
    assert endpoint.startswith("tcp://127.0.0.1:")
    assert not endpoint.endswith(":0")


def test_malformed_frames_are_counted_and_logged_while_valid_ones_go_through(start, publisher, caplog):
    sink = Collector()
    running = start(sink)
    pub = publisher(running.ingress.bound_endpoints()[0])
    bad = [
        [b"rate.push"],
        [b"rate.push", b"\xc1garbage", b"extra"],
        [b"rate.push", b"\xc1garbage"],
        [b"nope.push", msgpack.packb({"record": RATE})],
        [b"rate.push", msgpack.packb({"record": {"currency": 1, "usd": 1.0}})],
        [b"rate.push", msgpack.packb(["not", "a", "map"])],
        [b"trade.push", msgpack.packb({"event": ["EV_RECORD_ADD"],  # an unhashable event name
                                       "record": {"order": 1, "login": 1, "cmd": "OP_BUY"}})],
    ]
    with caplog.at_level(logging.WARNING, logger="brokerflow.bus"):
        for frames in bad:
            pub.publish_raw(frames)
            pub.publish("rate.push", RATE)
        wait_until(lambda: running.ingress.stats()["received"] == 14)
    assert len(sink.events) == 7
    assert running.ingress.stats()["malformed"] == 7
    warnings = [r for r in caplog.records if r.name == "brokerflow.bus" and "malformed" in r.getMessage()]
    assert len(warnings) == 7


def test_duplicates_by_id_and_by_seq_are_dropped(start, publisher):
    sink = Collector()
    running = start(sink)
    pub = publisher(running.ingress.bound_endpoints()[0])
    for frames in (
        raw("rate.push", id="a"), raw("rate.push", id="a"),
        raw("rate.push", source="s", seq=1), raw("rate.push", source="s", seq=2),
        raw("rate.push", source="s", seq=2), raw("rate.push", source="s", seq=1),
        raw("rate.push", id="b", source="s", seq=3), raw("rate.push", id="b", source="s", seq=4),
    ):
        pub.publish_raw(frames)
    wait_until(lambda: running.ingress.stats()["received"] == 8)
    assert [(e.id, e.seq) for e in sink.events] == [("a", None), (None, 1), (None, 2), ("b", 3)]
    assert running.ingress.stats()["duplicates"] == 4


def test_gaps_are_counted_and_logged_with_the_missing_range_and_the_event_is_kept(start, publisher, caplog):
    sink = Collector()
    running = start(sink)
    pub = publisher(running.ingress.bound_endpoints()[0])
    with caplog.at_level(logging.WARNING, logger="brokerflow.bus"):
        for seq in (1, 2, 6, 7, 10):
            pub.publish_raw(raw("rate.push", source="mt5", seq=seq))
        wait_until(lambda: len(sink.events) == 5)
    assert running.ingress.stats()["gaps"] == 2
    messages = [r.getMessage() for r in caplog.records if "gap" in r.getMessage()]
    assert messages == ["bus: gap from source 'mt5': seq 3..5 missing (3 events)",
                        "bus: gap from source 'mt5': seq 8..9 missing (2 events)"]


def test_floods_of_gaps_and_malformed_messages_are_counted_whole_and_logged_a_line_at_a_time(
        start, publisher, caplog):
    sink = Collector()
    running = start(sink)
    pub = publisher(running.ingress.bound_endpoints()[0])
    with caplog.at_level(logging.WARNING, logger="brokerflow.bus"):
        for seq in range(1, 801, 2):
            pub.publish_raw(raw("rate.push", source="s" * 250, seq=seq))
            pub.publish_raw([b"trade.opened", b"\xc1 not msgpack"])
        wait_until(lambda: len(sink.events) == 400 and running.ingress.stats()["malformed"] == 400)
    assert running.ingress.stats()["gaps"] == 399
    gaps = [r.getMessage() for r in caplog.records if "gap" in r.getMessage()]
    malformed = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    # ten lines per kind per 10 s: a slow machine may take a second or third window, never 400
    assert 10 <= len(gaps) <= 50 and 10 <= len(malformed) <= 50
    assert all(len(line) < 200 for line in gaps)  # the sender's source is cut, never echoed whole


def test_a_failing_sink_is_logged_and_the_loop_goes_on(start, publisher, caplog):
    seen: list[Event] = []

    def sink(events: list[Event]) -> None:
        seen.extend(events)
        if any(e.id == "boom" for e in events):
            raise RuntimeError("sink exploded")

    running = start(sink)
    pub = publisher(running.ingress.bound_endpoints()[0])
    with caplog.at_level(logging.ERROR, logger="brokerflow.bus"):
        pub.publish("rate.push", RATE, id="boom")
        wait_until(lambda: seen)
        pub.publish("rate.push", RATE, id="after")
        wait_until(lambda: any(e.id == "after" for e in seen))
    assert running.thread.is_alive()
    assert any("sink failed" in r.getMessage() for r in caplog.records)


def test_a_batch_the_sink_failed_on_is_not_stored_as_seen(start, publisher, store):
    def sink(events: list[Event]) -> None:
        if any(e.id == "lost" for e in events):
            raise RuntimeError("the router is gone")

    running = start(sink, event_store=store.events)
    pub = publisher(running.ingress.bound_endpoints()[0])
    pub.publish("rate.push", RATE, id="lost")
    wait_until(lambda: running.ingress.stats()["received"] == 1)
    pub.publish("rate.push", RATE, id="kept")
    wait_until(lambda: "kept" in store.events.load_state(100)[0])
    assert "lost" not in store.events.load_state(100)[0]  # a resend after a restart is processed


def test_the_ingress_connects_to_publishers_that_bind(context, publisher):
    sink = Collector()
    pub = Publisher("tcp://127.0.0.1:0", "bound", bind=True, context=context, linger_ms=0)
    try:
        settings = Settings(events_bind=(), events_connect=(pub.endpoint,))
        running = Running(Ingress(settings, sink, context=context))
        try:
            assert pub.wait_subscribed(timeout_s=5)
            pub.publish("rate.push", RATE)
            wait_until(lambda: sink.events)
        finally:
            running.close()
    finally:
        pub.close()
    assert sink.events[0].source == "bound"


def test_an_oversize_frame_never_reaches_the_sink_and_other_publishers_go_on(start, publisher):
    sink = Collector()
    running = start(sink, max_frame_bytes=10_000)
    endpoint = running.ingress.bound_endpoints()[0]
    big, small = publisher(endpoint, source="big"), publisher(endpoint, source="small")
    big.publish("rate.push", {**RATE, "blob": "x" * 50_000})
    small.publish("rate.push", RATE)
    wait_until(lambda: sink.events)
    assert [e.source for e in sink.events] == ["small"]


@pytest.fixture
def bound_publisher(context) -> Iterator[Publisher]:
    pub = Publisher("tcp://127.0.0.1:0", "bound", bind=True, context=context, linger_ms=0)
    yield pub
    pub.close()


def test_a_frame_over_the_hard_cap_drops_a_connect_endpoint_which_is_dialled_again(start, bound_publisher,
                                                                                   caplog):
    """libzmq ends a connecting session for good on a frame over MAXMSGSIZE; the ingress dials again."""
    sink = Collector()
    running = start(sink, events_bind=(), events_connect=(bound_publisher.endpoint,), max_frame_bytes=10_000)
    assert bound_publisher.wait_subscribed(timeout_s=5)
    with caplog.at_level(logging.WARNING, logger="brokerflow.bus"):
        bound_publisher.publish("rate.push", {**RATE, "blob": "x" * 50_000})  # over 4 x 10,000
        wait_until(lambda: running.ingress.stats()["disconnects"] == 1)

        def a_later_event_arrived() -> bool:
            bound_publisher.publish("rate.push", RATE)  # a PUB drops what it sends while nobody listens
            return bool(sink.events)

        wait_until(a_later_event_arrived, interval_s=0.05)
    assert running.ingress.stats()["malformed"] == 0
    assert any("dropped" in r.getMessage() and "dialling it again" in r.getMessage() for r in caplog.records)


def test_a_moderately_oversized_frame_is_malformed_and_the_connection_stays(start, bound_publisher):
    sink = Collector()
    running = start(sink, events_bind=(), events_connect=(bound_publisher.endpoint,), max_frame_bytes=10_000)
    assert bound_publisher.wait_subscribed(timeout_s=5)
    bound_publisher.publish("rate.push", {**RATE, "blob": "x" * 20_000})  # over 10,000, under the cap
    bound_publisher.publish("rate.push", RATE)
    wait_until(lambda: sink.events)
    assert [e.seq for e in sink.events] == [2]
    assert running.ingress.stats()["malformed"] == 1 and running.ingress.stats()["disconnects"] == 0


def test_poll_once_steps_the_loop_and_stamps_the_injected_clock(context, publisher):
    sink = Collector()
    settings = Settings(events_bind=("tcp://127.0.0.1:0",))
    ingress = Ingress(settings, sink, clock=lambda: 1_700_000_000.5, context=context)
    try:
        assert ingress.poll_once(0) == 0
        pub = Publisher(ingress.bound_endpoints()[0], "step", context=context, linger_ms=0)
        try:
            # A bound SUB sends its subscription to a new peer only when its own thread touches
            # the socket, so the ingress must be stepped while the publisher waits.
            wait_until(lambda: ingress.poll_once(0) == 0 and pub.wait_subscribed(timeout_s=0.01))
            pub.publish("rate.push", RATE)
            wait_until(lambda: ingress.poll_once(10))
        finally:
            pub.close()
    finally:
        ingress.close()
    assert sink.events[0].received_ms == 1_700_000_000_500


@pytest.fixture
def store(sqlite_url) -> Iterator:
    from brokerflow.storage import open_store

    opened = open_store(sqlite_url)
    yield opened
    opened.close()


def test_dedup_state_survives_a_restart_through_the_event_store(start, publisher, store):
    first = Collector()
    running = start(first, event_store=store.events)
    pub = publisher(running.ingress.bound_endpoints()[0], source="mt5")
    pub.publish("rate.push", RATE, id="x-1")
    pub.publish("rate.push", RATE, id="x-2")
    wait_until(lambda: store.events.load_state(10) == (["x-1", "x-2"], {"mt5": 2}))
    running.close()

    second = Collector()
    restarted = start(second, event_store=store.events)
    pub2 = publisher(restarted.ingress.bound_endpoints()[0], source="mt5")
    for frames in (raw("rate.push", id="x-1"), raw("rate.push", source="mt5", seq=2),
                   raw("rate.push", source="mt5", seq=3), raw("rate.push", id="x-3")):
        pub2.publish_raw(frames)
    wait_until(lambda: restarted.ingress.stats()["received"] == 4)
    assert [(e.id, e.seq) for e in second.events] == [(None, 3), ("x-3", None)]
    assert restarted.ingress.stats()["duplicates"] == 2
    wait_until(lambda: store.events.load_state(10) == (["x-1", "x-2", "x-3"], {"mt5": 3}))


class FailingOnce:
    """``store.events`` whose first ``record`` fails, as a locked database would."""

    def __init__(self, events) -> None:
        self.events = events
        self.failures_left = 1

    def load_state(self, limit_ids: int, limit_sources: int):
        return self.events.load_state(limit_ids, limit_sources)

    def record(self, ids, last_seq) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise OSError("database is locked")
        self.events.record(ids, last_seq)

    def prune(self, keep: int, keep_sources: int) -> int:
        return self.events.prune(keep, keep_sources)


def test_a_failing_store_is_retried_with_the_state_still_pending(start, publisher, store, caplog):
    flaky = FailingOnce(store.events)
    sink = Collector()
    running = start(sink, event_store=flaky)
    pub = publisher(running.ingress.bound_endpoints()[0], source="s")
    with caplog.at_level(logging.ERROR, logger="brokerflow.bus"):
        pub.publish("rate.push", RATE, id="first")
        wait_until(lambda: sink.events and flaky.failures_left == 0)
        pub.publish("rate.push", RATE, id="second")
        wait_until(lambda: store.events.load_state(10) == (["first", "second"], {"s": 2}))
    assert any("could not persist" in r.getMessage() for r in caplog.records)


def test_two_bind_endpoints_both_feed_the_same_sink(start, publisher):
    sink = Collector()
    running = start(sink, events_bind=("tcp://127.0.0.1:0", tcp_endpoint()))
    endpoints = running.ingress.bound_endpoints()
    assert len(endpoints) == 2
    publisher(endpoints[0], source="a").publish("rate.push", RATE)
    publisher(endpoints[1], source="b").publish("rate.push", RATE)
    wait_until(lambda: len(sink.events) == 2)
    assert sorted(e.source for e in sink.events) == ["a", "b"]


def test_the_stored_ids_are_trimmed_to_the_window_as_events_arrive(start, publisher, store):
    sink = Collector()
    running = start(sink, event_store=store.events, max_ids=10)
    pub = publisher(running.ingress.bound_endpoints()[0], source="s")
    for n in range(60):
        pub.publish("rate.push", RATE, id=f"e{n}")
    wait_until(lambda: len(sink.events) == 60)
    wait_until(lambda: store.events.load_state(1000)[1] == {"s": 60})
    stored = store.events.load_state(1000)[0]
    assert len(stored) <= 2 * 10  # trimmed every window's worth of new ids
    assert stored[-10:] == [f"e{n}" for n in range(50, 60)]


# -- backpressure: the ingress stops reading while the router has not taken its batches -------
def test_the_ingress_stops_reading_at_its_ceiling_and_resumes_as_the_router_takes(start, publisher, store,
                                                                                   caplog):
    """The test plays the router: ``taken_by_router`` is what the router actor calls per batch."""
    handoff, sink = Handoff(), Collector()
    running = start(sink, event_store=store.events, handoff=handoff, ingress_max_inflight=2)
    ingress = running.ingress
    pub = publisher(ingress.bound_endpoints()[0], source="s")
    with caplog.at_level(logging.WARNING, logger="brokerflow.bus"):
        for n in (1, 2):  # two events, a batch each: the ceiling
            pub.publish("rate.push", RATE, id=f"e{n}")
            wait_until(lambda n=n: len(sink.batches) == n)
        for n in range(3, 11):
            pub.publish("rate.push", RATE, id=f"e{n}")
        wait_until(lambda: ingress.stats()["paused"] == 1)
        # A negative outcome needs a window: the ingress polls every 100 ms, so in 0.5 s a reading
        # ingress would have read the queued frames several times over.
        time.sleep(0.5)  # the window a negative outcome needs (see above)
        assert ingress.stats()["received"] == 2 and len(sink.events) == 2
        assert store.events.load_state(100) == ([], {})  # nothing the router has not taken is stored
    assert [r.getMessage() for r in caplog.records if "reading paused" in r.getMessage()] == [
        "bus: 2 events wait for the router; reading paused until it takes some "
        "(the SUB socket's high-water mark applies meanwhile)"]

    handoff.taken_by_router(1)  # the first event leaves the mailbox: one more may go in
    wait_until(lambda: len(sink.batches) == 3)
    wait_until(lambda: store.events.load_state(100) == (["e1"], {"s": 1}))
    wait_until(lambda: ingress.stats()["paused"] == 2)  # the third batch brought it back to the ceiling
    while len(sink.events) < 10:  # the router keeps up from now on
        handoff.taken_by_router(handoff.handed - handoff.taken)
        wait_until(lambda: handoff.handed > handoff.taken or len(sink.events) == 10)
    handoff.taken_by_router(handoff.handed - handoff.taken)
    assert [event.id for event in sink.events] == [f"e{n}" for n in range(1, 11)]  # nothing lost, in order
    wait_until(lambda: store.events.load_state(100) == ([f"e{n}" for n in range(1, 11)], {"s": 10}))
    assert ingress.stats()["received"] == 10


def test_the_ceiling_counts_events_so_the_engines_own_echoes_fill_it_too(start, publisher):
    """A big batch (here the engine's echo of 10 changes) is 10 events to wait behind, not one."""
    handoff, sink = Handoff(), Collector()
    running = start(sink, handoff=handoff, ingress_max_inflight=5)
    ingress = running.ingress
    pub = publisher(ingress.bound_endpoints()[0], source="s")  # connected while the ingress reads
    echoed: list[list[Event]] = []
    handoff.hand(echoed.append, [object()] * 10)  # the engine's echo path: counted, never held
    wait_until(lambda: ingress.stats()["paused"] == 1)  # at its next poll, with nothing to read
    pub.publish("rate.push", RATE, id="after-echo")
    # A negative outcome needs a window: the ingress polls every 100 ms, so in 0.5 s a reading
    # ingress would have read the queued frame several times over.
    time.sleep(0.5)  # the window a negative outcome needs (see above)
    assert ingress.stats()["received"] == 0
    handoff.taken_by_router(10)  # the router took the echo: room again
    wait_until(lambda: [event.id for event in sink.events] == ["after-echo"])


def test_the_dedup_state_of_a_batch_is_stored_once_the_router_took_it(start, publisher, store):
    handoff, sink = Handoff(), Collector()
    running = start(sink, event_store=store.events, handoff=handoff)
    pub = publisher(running.ingress.bound_endpoints()[0], source="s")
    pub.publish("rate.push", RATE, id="a")
    wait_until(lambda: len(sink.events) == 1)
    pub.publish("rate.push", RATE, id="b")
    wait_until(lambda: len(sink.events) == 2)  # so the poll that handed "a" is over
    assert store.events.load_state(10) == ([], {})
    handoff.taken_by_router(1)
    wait_until(lambda: store.events.load_state(10) == (["a"], {"s": 1}))
    handoff.taken_by_router(1)
    wait_until(lambda: store.events.load_state(10) == (["a", "b"], {"s": 2}))


# -- the source cap across a restart and while the store is down -------------------------------
def test_a_recently_seen_source_survives_a_restart_after_a_flood_of_invented_sources(start, publisher, sqlite_url):
    """Stored sources past the cap: the restart keeps the most recently seen, not the oldest rows."""
    import itertools

    from brokerflow.bus.sequence import DEFAULT_MAX_SOURCES
    from brokerflow.storage import open_store

    # Each write a distinct millisecond, so "most recently stored" has one answer.
    store = open_store(sqlite_url, clock=itertools.count(1_700_000_000_000).__next__)
    try:
        sink = Collector()
        running = start(sink, event_store=store.events)
        pub = publisher(running.ingress.bound_endpoints()[0], source="bo")
        pub.publish_raw(raw("rate.push", source="bo", seq=1))  # the long-lived publisher: the oldest row
        wait_until(lambda: store.events.load_state(1)[1].get("bo") == 1)
        flood = DEFAULT_MAX_SOURCES + 50
        for n in range(flood):
            pub.publish_raw(raw("rate.push", source=f"junk-{n}", seq=1))
        wait_until(lambda: running.ingress.stats()["received"] == 1 + flood, timeout_s=30)
        wait_until(lambda: store.events.load_state(1)[1].get(f"junk-{flood - 1}") == 1)
        pub.publish_raw(raw("rate.push", source="bo", seq=2))  # seen again, after the flood
        wait_until(lambda: store.events.load_state(1)[1].get("bo") == 2)
        running.close()

        second = Collector()
        restarted = start(second, event_store=store.events)
        pub2 = publisher(restarted.ingress.bound_endpoints()[0], source="bo")
        pub2.publish_raw(raw("rate.push", source="bo", seq=2))  # a replay: already processed
        pub2.publish_raw(raw("rate.push", source="bo", seq=3))
        wait_until(lambda: restarted.ingress.stats()["received"] == 2)
        assert [(e.source, e.seq) for e in second.events] == [("bo", 3)]
        assert restarted.ingress.stats()["duplicates"] == 1
    finally:
        store.close()


class DownStore:
    """``store.events`` whose ``record`` fails while ``down`` is set; it remembers what it was given."""

    def __init__(self, events) -> None:
        self.events = events
        self.down = True
        self.failures = 0
        self.recorded_sources: list[int] = []

    def load_state(self, limit_ids: int, limit_sources: int):
        return self.events.load_state(limit_ids, limit_sources)

    def record(self, ids, last_seq) -> None:
        if self.down:
            self.failures += 1
            raise OSError("disk I/O error")
        self.events.record(ids, last_seq)
        self.recorded_sources.append(len(last_seq))

    def prune(self, keep: int, keep_sources: int) -> int:
        return self.events.prune(keep, keep_sources)


def test_pending_sequence_numbers_stay_within_the_source_cap_while_the_store_is_down(start, publisher, store):
    from brokerflow.bus.sequence import DEFAULT_MAX_SOURCES

    down = DownStore(store.events)
    sink = Collector()
    running = start(sink, event_store=down)
    pub = publisher(running.ingress.bound_endpoints()[0], source="s")
    sources = DEFAULT_MAX_SOURCES + 500
    for n in range(sources):
        pub.publish_raw(raw("rate.push", source=f"s{n}", seq=1))
    wait_until(lambda: len(sink.events) == sources, timeout_s=30)
    failures = down.failures
    wait_until(lambda: down.failures > failures)  # a poll after the last event: all of it is pending
    down.down = False
    wait_until(lambda: down.recorded_sources)
    assert down.recorded_sources[0] == DEFAULT_MAX_SOURCES
    stored = store.events.load_state(1, 2 * sources)[1]
    assert set(stored) == {f"s{n}" for n in range(500, sources)}  # the most recently changed
