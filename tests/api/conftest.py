"""Real sockets for the API tests: a running ApiServer thread and REQ clients on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any

import msgpack
import pytest
import zmq

from brokerflow.api.access import READ_ROLES
from brokerflow.api.dispatcher import Dispatcher
from brokerflow.api.server import ApiServer
from brokerflow.api.services import Services
from brokerflow.settings import Settings
from brokerflow.storage import open_store
from brokerflow.storage.repositories.history import HistoryReader
from brokerflow.workflow.machine import commands as machine
from brokerflow.workflow.reference import ReferenceData

MAX_FRAME_BYTES = 64 * 1024


class Client:
    """A plain REQ client, as a user's script would have."""

    def __init__(self, context: zmq.Context, endpoint: str, timeout_ms: int = 5000) -> None:
        self.sock = context.socket(zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
        self.sock.connect(endpoint)

    def send_raw(self, *frames: bytes) -> Any:
        self.sock.send_multipart(list(frames))
        data = self.sock.recv()
        return json.loads(data) if data[:1] == b"{" else msgpack.unpackb(data, raw=False)

    def call(self, cmd: str, params: Mapping[str, Any] | None = None, token: str | None = None,
             as_json: bool = False) -> dict[str, Any]:
        request: dict[str, Any] = {"cmd": cmd, "params": dict(params or {})}
        if token is not None:
            request["token"] = token
        frame = json.dumps(request).encode() if as_json else msgpack.packb(request, use_bin_type=True)
        return self.send_raw(frame)

    def close(self) -> None:
        self.sock.close(linger=0)


class RunningServer:
    def __init__(self, dispatcher: Dispatcher, max_frame_bytes: int = MAX_FRAME_BYTES, hold_gil: bool = True,
                 forward: Any = None) -> None:
        self.context = zmq.Context()
        self.server = ApiServer("tcp://127.0.0.1:0", dispatcher, max_frame_bytes, context=self.context,
                                hold_gil=hold_gil, forward=forward)
        self.endpoint = self.server.endpoint
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.server.run, args=(self._stop, 20), daemon=True)
        self._thread.start()
        self._clients: list[Client] = []

    def client(self, timeout_ms: int = 5000) -> Client:
        client = Client(self.context, self.endpoint, timeout_ms)
        self._clients.append(client)
        return client

    def stop(self) -> None:
        for client in self._clients:
            client.close()
        self._stop.set()
        self._thread.join(timeout=5)
        self.server.close()
        self.context.term()


@pytest.fixture
def serve() -> Iterator[Any]:
    """``serve(dispatcher) -> RunningServer``; every server started is stopped after the test."""
    started: list[RunningServer] = []

    def start(dispatcher: Dispatcher, **kwargs: Any) -> RunningServer:
        running = RunningServer(dispatcher, **kwargs)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


NOW_MS = 1_795_435_200_000  # 2026-11-23T12:00:00Z

ROLES = sorted(READ_ROLES)


def deposit_rule(brand: str = "alpha", **changes: Any) -> dict[str, Any]:
    rule = {
        "name": "big deposit", "brand": brand, "trigger": "deposit.created",
        "conditions": [{"field": "amount_usd", "op": ">=", "value": 1000}],
        "actions": [{"type": "notify.manager", "params": {"message": "deposit by {{trade.login}}"}}],
    }
    rule.update(changes)
    return rule


def manual_rule(brand: str = "alpha", exec_roles: list[str] | None = None) -> dict[str, Any]:
    return {
        "name": "call back", "brand": brand, "trigger": "manual", "exec_roles": exec_roles or [],
        "actions": [{"type": "notify.manager", "params": {"message": "call the customer"}}],
    }


@pytest.fixture
def store(sqlite_url):
    opened = open_store(sqlite_url, clock=lambda: NOW_MS)
    yield opened
    opened.close()


@pytest.fixture
def services(store) -> Services:
    """Real services over the SQLite store; reference changes reach the replica as in the engine."""
    refs = ReferenceData()
    built = Services(store, refs, Settings(max_frame_bytes=MAX_FRAME_BYTES), now_ms=lambda: NOW_MS)
    built.reference_listeners.append(refs.apply)
    built.open_history = partial(HistoryReader, store.url)  # as the engine wires it
    return built


class Api:
    """A running server, one REQ client, and a token per role (unscoped and scoped to alpha)."""

    def __init__(self, running: RunningServer, services: Services) -> None:
        self.running = running
        self.services = services
        self.client = running.client()
        tokens = services.store.tokens
        self.tokens = {role: tokens.create(role, name=f"{role.lower()}")[0] for role in ROLES}
        self.alpha = {role: tokens.create(role, brand="alpha", name=f"alpha {role.lower()}")[0] for role in ROLES}
        self.admin = self.tokens["SESSION_ADMIN"]

    def call(self, cmd: str, params: Mapping[str, Any] | None = None, token: str | None = "admin",
             as_json: bool = False) -> dict[str, Any]:
        token = self.admin if token == "admin" else token
        return self.client.call(cmd, params, token, as_json)

    def body(self, cmd: str, params: Mapping[str, Any] | None = None, token: str | None = "admin") -> Any:
        reply = self.call(cmd, params, token)
        assert reply["success"] is True, reply
        return reply["body"]

    def error(self, cmd: str, params: Mapping[str, Any] | None = None, token: str | None = "admin") -> Any:
        reply = self.call(cmd, params, token)
        assert reply["success"] is False, reply
        return reply["error"]


@pytest.fixture
def api(serve, services) -> Api:
    return Api(serve(Dispatcher(services)), services)


SIGNUP = {
    "name": "signup", "initial": "personal",
    "states": {
        "personal": {"title": "Personal data", "on": {"next": "docs"}, "boStepCode": "PD"},
        "docs": {"on": {"submit": "done", "back": "personal"}},
        "done": {"final": True},
    },
}


@pytest.fixture
def pool():
    executor = ThreadPoolExecutor(max_workers=2)
    yield executor
    executor.shutdown(wait=True)


@pytest.fixture
def machine_api(api, pool):
    """``api`` whose process handler runs the pure machine on a pool and persists to the store:
    the shape of the engine's process pool without its actors, so replies really come later."""
    store, lock, seen = api.services.store, threading.Lock(), []

    def handle(cmd, params, principal) -> Future:
        seen.append((cmd, params, principal))

        def work():
            with lock:  # one command at a time, as the engine's per-pid mailbox does
                pid = params.get("pid") or f"p{len(seen)}"
                state = None if cmd in ("START", "RESTORE") else store.processes.load(pid)
                step = machine.apply_command(lambda n, v: store.flows.get(n, v), state, cmd,
                                             params.get("name"), params.get("input"), pid, NOW_MS)
                if cmd in ("START", "RESTORE"):
                    store.processes.create(step.state)
                else:
                    store.processes.save(step.state)
                return step.body

        return pool.submit(work)

    api.services.process_handler = handle
    api.body("MngAddFlow", {"flow": SIGNUP})
    api.seen = seen
    return api


