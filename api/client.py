"""A small client for the management API, used by the CLI, the demo, the benchmark and scripts.

A REQ socket that times out is wedged by ZeroMQ's strict send/receive alternation, so the
client replaces its socket after a timeout instead of reusing it.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack
import zmq

from brokerflow import errors


def error_for(error: dict[str, Any]) -> errors.BrokerflowError:
    """The exception of our tree that an error envelope stands for."""
    code = error.get("code", "INTERNAL")
    classes = [errors.BrokerflowError, *_subclasses(errors.BrokerflowError)]
    cls = next((c for c in classes if c.code == code), errors.BrokerflowError)
    exc = cls(str(error.get("text", "")), details=error.get("details"))
    exc.uuid = error.get("uuid")  # type: ignore[attr-defined]
    return exc


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


class ApiClient:
    def __init__(self, endpoint: str, token: str | None = None, timeout_ms: int = 10_000,
                 as_json: bool = False, context: zmq.Context | None = None) -> None:
        self.endpoint, self.token, self.timeout_ms, self.as_json = endpoint, token, timeout_ms, as_json
        self.context = context or zmq.Context.instance()
        self.socket: zmq.Socket | None = None

    def _connect(self) -> zmq.Socket:
        if self.socket is None:
            self.socket = self.context.socket(zmq.REQ)
            self.socket.setsockopt(zmq.LINGER, 0)
            self.socket.connect(self.endpoint)
        return self.socket

    def request(self, cmd: str, params: dict[str, Any] | None = None,
                token: str | None = None) -> dict[str, Any]:
        """Send one command; return the whole envelope."""
        message = {"cmd": cmd, "params": params or {}}
        if token or self.token:
            message["token"] = token or self.token
        frame = json.dumps(message).encode() if self.as_json else msgpack.packb(message, use_bin_type=True)
        return self.request_raw(frame)

    def request_raw(self, frame: bytes) -> dict[str, Any]:
        socket = self._connect()
        socket.send(frame)
        if not socket.poll(self.timeout_ms):
            self.close()
            raise TimeoutError(f"no reply from {self.endpoint} within {self.timeout_ms} ms")
        reply = socket.recv()
        if reply[:1] == b"{":
            return json.loads(reply)
        return msgpack.unpackb(reply, raw=False)

    def call(self, cmd: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one command; return its body or raise the error it answered with."""
        envelope = self.request(cmd, params)
        if not envelope.get("success"):
            raise error_for(envelope.get("error", {}))
        return envelope.get("body", {})

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close(linger=0)
            self.socket = None

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def format_stats(body: dict[str, Any]) -> str:
    """``MngGetStats`` as a table for people."""
    lines = [f"uptime {body.get('uptime_s', 0):.1f}s", "",
             f"{'actor':<28}{'kind':<10}{'mailbox':>9}{'processed':>12}{'failed':>8}{'mean ms':>10}"]
    for actor in body.get("actors", []):
        lines.append(f"{actor['name']:<28}{actor['kind']:<10}{actor['mailbox']:>9}{actor['processed']:>12}"
                     f"{actor['failed']:>8}{actor.get('mean_ms', 0):>10.3f}")
    lines.append("")
    lines.append("bus   " + "  ".join(f"{k}={v}" for k, v in body.get("bus", {}).items()))
    lines.append("runs  " + "  ".join(f"{k}={v}" for k, v in body.get("runs", {}).items()))
    hooks = body.get("webhooks")
    if hooks:
        flat = {**{f"delivered_{k}": v for k, v in (hooks.get("deliveries") or {}).items()},
                **{k: v for k, v in hooks.items() if k != "deliveries"}}
        lines.append("hooks " + "  ".join(f"{k}={v}" for k, v in flat.items()))
    return "\n".join(lines)
