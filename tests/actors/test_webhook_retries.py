"""Deliveries and the due-retry poller, with real storage and real (sometimes hostile) receivers.

Hostile receivers: one that never answers, one that sends a huge body, one that redirects,
one that answers garbage, one that asks to be left alone for a year. Each is bounded in time,
classified, and leaves no thread behind past its deadline.
"""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import Future
from dataclasses import replace

import pytest

from brokerflow.actors.webhook_delivery import Deliveries
from brokerflow.actors.webhook_retries import WebhookRetries
from brokerflow.bus.webhook_sender import WebhookSender
from tests.actors.conftest import NOW_MS, logged, make_job
from tests.conftest import wait_until

LOOPBACK = ("127.0.0.0/8",)


class RawReceiver:
    """A TCP listener that answers every connection with ``reply`` (bytes, or None: never answers)."""

    def __init__(self, reply: bytes | None) -> None:
        self.reply = reply
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.connections: list[socket.socket] = []
        self.requests = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections.append(conn)
            conn.settimeout(2)
            try:
                conn.recv(65536)
                self.requests += 1
                if self.reply is not None:
                    conn.sendall(self.reply)
                    conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}{path}"

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for conn in self.connections:
            conn.close()
        self.sock.close()


@pytest.fixture
def raw():
    made: list[RawReceiver] = []

    def make(reply: bytes | None) -> RawReceiver:
        made.append(RawReceiver(reply))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture
def clock():
    class Clock:
        now = NOW_MS

        def __call__(self) -> int:
            return self.now

    return Clock()


@pytest.fixture
def deliveries(store, clock):
    sender = WebhookSender(LOOPBACK, 4)
    yield Deliveries(sender, store.webhooks, {"crm": "s3cret"}, clock, rand=lambda: 1.0)
    sender.close()


def hook_job(run_ids, url: str, **params):
    return make_job(run_ids, [{"type": "webhook.send", "params": {"url": url, "timeout_ms": 1000, **params}},
                              {"type": "notify.manager", "params": {"message": "after"}}])


def status_reply(status: int, extra: bytes = b"") -> bytes:
    return f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n".encode() + extra + b"\r\n"


# -- outcomes ----------------------------------------------------------------------------------
def test_a_retryable_failure_is_stored_and_the_job_parked(deliveries, store, run_ids, raw, clock):
    receiver = raw(status_reply(503))
    job = hook_job(run_ids, receiver.url(), retries=2, backoff_s=0.5)
    parked = deliveries.first(job)
    assert parked.status == "retrying" and parked.results[0]["status"] == "retrying"
    assert parked.results[0]["http_status"] == 503 and len(parked.results[0]["attempts"]) == 1
    [row] = store.webhooks.due(clock.now + 500)
    assert (row["run_id"], row["action_index"], row["due_at"]) == (job.run_id, 0, clock.now + 500)
    assert row["job"]["results"] == [] and row["delivery"]["idempotency_key"] == f"brokerflow-{job.run_id}-0"


def test_a_retry_after_of_a_year_waits_600_s(deliveries, store, run_ids, raw, clock):
    receiver = raw(status_reply(429, b"Retry-After: 31536000\r\n"))
    deliveries.rand = lambda: 0.0
    deliveries.first(hook_job(run_ids, receiver.url(), backoff_s=0.05))
    [row] = store.webhooks.due(clock.now + 600_000)
    assert row["due_at"] == clock.now + 600_000


def test_a_run_someone_waits_on_is_answered_after_one_attempt_and_leaves_no_dead_letter(deliveries, store,
                                                                                        run_ids, raw):
    receiver = raw(status_reply(503))
    job = replace(hook_job(run_ids, receiver.url()), reply=Future())
    done = deliveries.first(job)
    assert (done.status, done.error) == ("failed", "HTTP 503")
    assert store.webhooks.pending_count() == 0 and store.webhooks.dead_letter_count() == 0


def test_an_unknown_secret_at_send_time_fails_without_sending(deliveries, store, run_ids, raw):
    receiver = raw(status_reply(200))
    done = deliveries.first(hook_job(run_ids, receiver.url(), secret="gone"))
    assert (done.status, done.error) == ("failed", "signing secret 'gone' is not configured")
    assert receiver.requests == 0 and store.webhooks.pending_count() == 0


@pytest.mark.parametrize(("reply", "verdict"), [
    (None, "retrying"),  # never answers: a timeout, after timeout_ms
    (b"garbage\r\n\r\n", "retrying"),  # not HTTP at all
    (b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70_000 + b"\r\n\r\n", "retrying"),  # a header line past any limit
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n" + b"x" * 10_000_000, "success"),  # a huge body
    (status_reply(301, b"Location: http://169.254.169.254/\r\n"), "failed"),  # a redirect: never followed
    (status_reply(404), "failed"),
])
def test_hostile_receivers_are_bounded_and_classified(deliveries, store, run_ids, raw, reply, verdict):
    receiver = raw(reply)
    started = time.monotonic()
    done = deliveries.first(hook_job(run_ids, receiver.url()))
    assert time.monotonic() - started < 2.5  # timeout_ms 1000, with room for a loaded machine
    status = done.results[0]["status"]
    assert status == verdict, done.results
    assert store.webhooks.pending_count() == (1 if verdict == "retrying" else 0)
    assert receiver.requests == 1


def test_a_target_the_guard_refuses_is_final(store, run_ids, clock):
    sender = WebhookSender((), 1)  # loopback not allowed
    try:
        done = Deliveries(sender, store.webhooks, {}, clock).first(hook_job(run_ids, "http://127.0.0.1:9/x"))
    finally:
        sender.close()
    assert done.status == "failed" and done.error.startswith("target refused")
    assert store.webhooks.pending_count() == 0 and store.webhooks.dead_letter_count() == 0


# -- the poller --------------------------------------------------------------------------------
@pytest.fixture
def retries(deliveries, store, pipeline, stats, clock):
    poller = WebhookRetries(store.webhooks, deliveries, pipeline, stats, 2, clock)
    yield poller
    poller.close()


def settled_run(pipeline, store, status: str) -> dict:
    """The one logged run once it has ``status`` (a parked run is written first, then replaced)."""
    def reached():
        runs = logged(pipeline, store, 1)
        return runs[0] if runs[0]["status"] == status else None

    return wait_until(reached)


def test_poll_once_sends_what_is_due_and_the_run_is_logged_with_every_attempt(retries, deliveries, store, pipeline,
                                                                             run_ids, raw, clock):
    receiver = raw(status_reply(200))
    bad = raw(status_reply(503))
    job = make_job(run_ids, [{"type": "webhook.send", "params": {"url": bad.url(), "retries": 1, "backoff_s": 1}}])
    parked = deliveries.first(job)
    stored = store.webhooks.due(clock.now + 1000)[0]
    store.webhooks.schedule({**stored, "delivery": {**stored["delivery"], "url": receiver.url()}})  # recovered
    pipeline.dispatch([parked])
    assert retries.poll_once(clock.now + 999) == 0  # not due yet
    assert retries.poll_once(clock.now + 1000) == 1
    wait_until(lambda: store.webhooks.pending_count() == 0)
    assert receiver.requests == 1
    wait_until(lambda: retries.in_flight() == 0)
    run = settled_run(pipeline, store, "success")
    assert run["actions"][0]["status"] == "success"
    assert [a.get("http_status") for a in run["actions"][0]["attempts"]] == [503, 200]
    assert deliveries.metrics.snapshot()["attempts"] == 2


def test_poll_once_exhausts_into_a_dead_letter(retries, deliveries, store, pipeline, run_ids, raw, clock):
    receiver = raw(status_reply(500))
    pipeline.dispatch([deliveries.first(hook_job(run_ids, receiver.url(), retries=1, backoff_s=1))])
    assert retries.poll_once(clock.now + 60_000) == 1
    wait_until(lambda: store.webhooks.dead_letter_count() == 1)
    wait_until(lambda: retries.in_flight() == 0)
    run = settled_run(pipeline, store, "failed")
    assert [a["status"] for a in run["actions"]] == ["failed", "skipped"]
    assert store.webhooks.dead_letters()[0]["last_error"] == "HTTP 500"


def test_a_claimed_retry_is_not_sent_twice_by_two_pollers(retries, deliveries, store, pipeline, stats, run_ids,
                                                           raw, clock):
    receiver = raw(None)  # hangs: the first poller's attempt stays in flight
    deliveries.first(hook_job(run_ids, receiver.url(), retries=1, backoff_s=1))
    other = WebhookRetries(store.webhooks, deliveries, pipeline, stats, 2, clock)
    try:
        assert retries.poll_once(clock.now + 1000) == 1
        assert other.poll_once(clock.now + 1000) == 0
        wait_until(lambda: retries.in_flight() == 0)  # its timeout (1 s) ends it; nothing left running
    finally:
        other.close()
