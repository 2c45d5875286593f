"""The HTTP front door: Workflow Machine, manual rule execution, sink routes, health, metrics, readiness,
and the web console (``api/console``).

Flask routes and parses; waitress serves (a production, pure-Python, multithreaded WSGI
server), so no HTTP is parsed by hand. Every route except sinks goes through the same
``Dispatcher`` as the ZeroMQ API and answers the same envelope as JSON: 200 on success, the
error's HTTP status otherwise — except a Workflow Machine command for a process another shard or
cluster member owns, which ``api.forwarding`` carries to the owner's management API and whose
reply is answered the same way. A sink answers whatever its rule's ``sink.respond`` says.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import waitress
from flask import Flask, Response, request
from waitress import wasyncore
from werkzeug.exceptions import HTTPException

import brokerflow
from brokerflow.api import envelope
from brokerflow.api.console import make_console
from brokerflow.api.dispatcher import Dispatcher
from brokerflow.api.forwarding import forward_process_command
from brokerflow.api.framing import check_token, encode_reply, finite, loads_json
from brokerflow.api.ops_routes import add_ops_routes
from brokerflow.api.services import Services
from brokerflow.errors import BadRequest, BrokerflowError, Internal, NotFound, UnknownCommand
from brokerflow.workflow.events import INT_MAX
from brokerflow.workflow.machine.commands import COMMANDS as MACHINE_COMMANDS

log = logging.getLogger(__name__)

SINK_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
DEFAULT_TIMEOUT_S = 30.0


def _json_response(reply: dict[str, Any], status: int | None = None) -> Response:
    return Response(encode_reply(reply, True), status=status or envelope.status_of(reply),
                    mimetype="application/json")


def _error_response(exc: BaseException, status: int | None = None) -> Response:
    return _json_response(envelope.failure(exc), status)


def _bearer() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return check_token(token.strip() or None)


def _json_body() -> Any:
    """The request's JSON body, ``None`` when empty; ``BadRequest`` when it is not JSON."""
    data = request.get_data(cache=True)
    if not data.strip():
        return None
    try:
        return loads_json(data)
    except BadRequest as exc:
        raise BadRequest(f"the body is not valid JSON: {exc.text}") from None


def _wait(reply: dict[str, Any] | Future[dict[str, Any]], timeout_s: float) -> dict[str, Any]:
    if not isinstance(reply, Future):
        return reply
    try:
        return reply.result(timeout=timeout_s)
    except FutureTimeout:
        return envelope.failure(Internal(f"no reply within {timeout_s:g} s"))


def _sink_response(result: Any) -> Response:
    if not isinstance(result, dict):
        raise Internal("the sink handler answered something that is not a response map")
    body = result.get("body")
    headers = dict(result.get("headers") or {})
    if body is None:
        body = b""
    elif not isinstance(body, (str, bytes)):
        body = json.dumps(finite(body), default=str, allow_nan=False)
        headers.setdefault("Content-Type", "application/json")
    status = result.get("status") or 200
    return Response(body, status=int(status), headers=headers)


class _Routes:
    """The route handlers, sharing the dispatcher, the services and the reply timeout."""

    def __init__(self, dispatcher: Dispatcher, services: Services, timeout_s: float) -> None:
        self.dispatcher, self.services, self.timeout_s = dispatcher, services, timeout_s

    def dispatch(self, cmd: str, params: dict[str, Any]) -> Response:
        request = {"cmd": cmd, "token": _bearer(), "params": params}
        # A process another shard or member owns: its owner answers, with the caller's own token.
        reply = forward_process_command(self.services.http_forward, request)
        if reply is None:
            reply = self.dispatcher.handle(request)
        return _json_response(_wait(reply, self.timeout_s))

    def workflow(self) -> Response:
        cmd = request.args.get("cmd")
        if not cmd:
            raise BadRequest("the cmd query parameter is required")
        if cmd not in MACHINE_COMMANDS:
            raise UnknownCommand(f"{cmd[:64]!r} is not a Workflow Machine command; "
                                 f"one of {', '.join(MACHINE_COMMANDS)}")
        params = {key: request.args[key] for key in ("name", "pid") if request.args.get(key)}
        body = _json_body()
        if body is not None:
            params["input"] = body
        return self.dispatch(cmd, params)

    def exec_rule(self, rule_id: str) -> Response:
        # isdigit() alone takes "²" and "٣", which int() refuses or reads as another number.
        if not (rule_id.isascii() and rule_id.isdigit()) or len(rule_id) > 19 or int(rule_id) > INT_MAX:
            raise NotFound(f"rule {rule_id[:64]!r} not found: rule ids are integers")
        body = _json_body()
        return self.dispatch("MngExecWorkflowRule", {"id": int(rule_id), "input": {} if body is None else body})

    def sink(self, route: str) -> Response:
        sink_request = {
            "method": request.method,
            "route": route,
            "headers": {name.lower(): value for name, value in request.headers.items()},
            "query": request.args.to_dict(flat=True),
            "body": request.get_data(cache=True),
            "content_type": request.content_type,
        }
        return _sink_response(_wait_sink(self.services.sink(route, sink_request), self.timeout_s))

    @staticmethod
    def health() -> Response:
        return Response(json.dumps({"status": "ok", "version": brokerflow.__version__}),
                        mimetype="application/json")


def _http_error(exc: HTTPException) -> Response:
    if exc.code == 404:
        return _error_response(NotFound(f"no route {request.path[:200]}"), 404)
    return _error_response(BadRequest(exc.description or exc.name), exc.code or 400)


def make_app(dispatcher: Dispatcher, services: Services, timeout_s: float = DEFAULT_TIMEOUT_S) -> Flask:
    """The gateway's Flask app; request bodies are capped at ``settings.max_frame_bytes``."""
    app = Flask("brokerflow")
    app.config["MAX_CONTENT_LENGTH"] = services.settings.max_frame_bytes
    routes = _Routes(dispatcher, services, timeout_s)
    app.add_url_rule("/workflow", "workflow", routes.workflow, methods=["POST"])
    app.add_url_rule("/automation/<rule_id>/exec", "exec", routes.exec_rule, methods=["POST"])
    app.add_url_rule("/sink/<path:route>", "sink", routes.sink, methods=SINK_METHODS)
    app.add_url_rule("/health", "health", routes.health, methods=["GET"])
    add_ops_routes(app, services)
    app.register_blueprint(make_console(dispatcher, services, timeout_s))
    app.register_error_handler(BrokerflowError, _error_response)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _error_response)
    return app


def _wait_sink(reply: Future[dict[str, Any]] | dict[str, Any], timeout_s: float) -> Any:
    """The sink handler's response map; its errors propagate to the error handlers."""
    if not isinstance(reply, Future):
        return reply
    try:
        return reply.result(timeout=timeout_s)
    except FutureTimeout:
        raise Internal(f"the sink produced no response within {timeout_s:g} s") from None


class HttpGateway:
    """waitress serving ``app`` on a thread; port 0 picks a free port (see ``port``)."""

    def __init__(self, host: str, port: int, app: Flask, threads: int = 8) -> None:
        self._map: dict[int, Any] = {}
        self._server = waitress.create_server(app, map=self._map, host=host, port=port, threads=threads,
                                              ident="brokerflow")
        self.host = host
        self.port: int = int(self._server.effective_port)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> HttpGateway:
        self._thread = threading.Thread(target=self._serve, name="brokerflow-http", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        try:
            while not self._stop.is_set() and self._map:
                wasyncore.loop(timeout=0.5, map=self._map, use_poll=True, count=1)
        except Exception:
            log.exception("HTTP gateway loop failed")
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        self._server.task_dispatcher.shutdown(timeout=5)
        wasyncore.close_all(self._map, ignore_all=True)

    def close(self) -> None:
        """Stop serving: the loop thread closes the sockets and the worker threads."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is None:
            self._shutdown()
            return
        self._server.pull_trigger()
        self._thread.join(timeout=10)
