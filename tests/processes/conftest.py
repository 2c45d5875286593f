"""A real engine per test (SQLite in ``tmp_path``, every socket on a free loopback port) and
the two front doors of the Workflow Machine behind one interface, so each test runs on both."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from brokerflow.api.client import ApiClient
from brokerflow.app.engine import Engine
from brokerflow.settings import Settings
from tests.processes.flows import ALL

ADMIN, READER = "SESSION_ADMIN", "SESSION_MANAGER"
DEFAULT = object()  # "the door's own token"


def engine_settings(db_url: str, **changes: Any) -> Settings:
    return Settings(db_url=db_url, events_bind=("tcp://127.0.0.1:0",), api_bind="tcp://127.0.0.1:0",
                    pub_bind="tcp://127.0.0.1:0", http="127.0.0.1:0", **changes)


class Rep:
    """The REP door: one REQ socket (``ApiClient``), replies as ``(None, envelope)``."""

    kind = "rep"

    def __init__(self, endpoint: str, token: str | None) -> None:
        self.endpoint, self.token = endpoint, token
        self.client = ApiClient(endpoint, token, timeout_ms=20_000)

    def send(self, cmd: str, name: Any = None, pid: Any = None, input: Any = None,  # noqa: A002
             token: Any = DEFAULT) -> tuple[int | None, dict[str, Any]]:
        params = {k: v for k, v in (("name", name), ("pid", pid), ("input", input)) if v is not None}
        message: dict[str, Any] = {"cmd": cmd, "params": params}
        token = self.token if token is DEFAULT else token
        if token is not None:
            message["token"] = token
        return None, self.client.request_raw(json.dumps(message).encode())

    def close(self) -> None:
        self.client.close()


class Http:
    """The HTTP door: ``POST /workflow?cmd=…&name=…&pid=…``, JSON body = input, Bearer token."""

    kind = "http"

    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url, self.token = base_url, token

    def send(self, cmd: str, name: Any = None, pid: Any = None, input: Any = None,  # noqa: A002
             token: Any = DEFAULT, raw_body: bytes | None = None) -> tuple[int | None, dict[str, Any]]:
        query = urllib.parse.urlencode({k: v for k, v in (("cmd", cmd), ("name", name), ("pid", pid))
                                        if v is not None})
        body = raw_body if raw_body is not None else (b"" if input is None else json.dumps(input).encode())
        token = self.token if token is DEFAULT else token
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(f"{self.base_url}/workflow?{query}", data=body, headers=headers,
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def close(self) -> None:
        pass


class Door:
    """One front door with a token: ``ok`` wants success and returns the body, ``fail`` the error."""

    def __init__(self, inner: Rep | Http) -> None:
        self.inner, self.kind = inner, inner.kind

    def send(self, cmd: str, **kwargs: Any) -> tuple[int | None, dict[str, Any]]:
        return self.inner.send(cmd, **kwargs)

    def ok(self, cmd: str, **kwargs: Any) -> dict[str, Any]:
        status, reply = self.inner.send(cmd, **kwargs)
        assert reply["success"] is True, reply
        assert status in (None, 200)
        return reply["body"]

    def fail(self, cmd: str, code: str, http_status: int, **kwargs: Any) -> dict[str, Any]:
        status, reply = self.inner.send(cmd, **kwargs)
        assert reply["success"] is False, reply
        assert "body" not in reply and "messages" not in reply
        assert set(reply["error"]) >= {"uuid", "code", "system", "title", "text"}
        assert reply["error"]["code"] == code, reply
        if self.kind == "http":
            assert status == http_status, (status, reply)
        return reply["error"]


class Running:
    """A started engine, its tokens and a management client (admin)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        tokens = engine.store.tokens
        self.admin = tokens.create(ADMIN, name="admin")[0]
        self.reader = tokens.create(READER, name="reader")[0]
        self.api = ApiClient(engine.api_endpoint, self.admin, timeout_ms=20_000)
        self._doors: list[Door] = []

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.engine.http.port}"

    def door(self, kind: str, token: str | None = None) -> Door:
        token = self.reader if token is None else token
        inner = Rep(self.engine.api_endpoint, token) if kind == "rep" else Http(self.http_url, token)
        door = Door(inner)
        self._doors.append(door)
        return door

    def add_flows(self, *flows: dict[str, Any]) -> None:
        for flow in flows or ALL:
            self.api.call("MngAddFlow", {"flow": flow})

    def stats_of(self, kind: str) -> list[dict[str, Any]]:
        return [cell for cell in self.api.call("MngGetStats")["actors"] if cell["kind"] == kind]

    def close(self) -> None:
        for door in self._doors:
            door.inner.close()
        self.api.close()
        self.engine.stop()


@pytest.fixture
def start_engine(sqlite_url) -> Iterator[Callable[..., Running]]:
    """``start_engine(**settings) -> Running``; every engine started is stopped after the test."""
    started: list[Running] = []

    def start(**changes: Any) -> Running:
        running = Running(Engine(engine_settings(changes.pop("db_url", sqlite_url), **changes)).start())
        started.append(running)
        return running

    yield start
    for running in reversed(started):
        running.close()


@pytest.fixture
def running(start_engine) -> Running:
    """An engine with the test flows added."""
    engine = start_engine()
    engine.add_flows()
    return engine


@pytest.fixture(params=["rep", "http"])
def door(request, running) -> Door:
    """Each test that takes ``door`` runs over the REP API and over the HTTP gateway."""
    return running.door(request.param)


@pytest.fixture
def store(sqlite_url) -> Iterator[Any]:
    """A store holding the COUNTER flow, for tests that drive the process pool directly."""
    from brokerflow.storage import open_store
    from tests.processes.flows import COUNTER

    opened = open_store(sqlite_url)
    opened.flows.save(dict(COUNTER))
    yield opened
    opened.close()
