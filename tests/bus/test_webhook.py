from __future__ import annotations

import os
import resource
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from brokerflow.bus._http import Connection, IdleConnections
from brokerflow.bus.webhook_sender import WebhookRequest, WebhookSender
from tests.conftest import free_port, wait_until

LOOPBACK = ["127.0.0.0/8"]


class Receiver(ThreadingHTTPServer):
    """A local webhook target that records what it received and from which client port."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.connections: list[socket.socket] = []
        self.finished = 0  # connections whose handler has ended (they leave ``connections``)

    def process_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        with self.lock:
            self.connections.append(request)
        super().process_request(request, client_address)

    def shutdown_request_sockets(self) -> None:
        """Close every connection from the server's side, as an idle timeout would, and wait for it."""
        with self.lock:
            connections, target = list(self.connections), self.finished + len(self.connections)
        for sock in connections:
            sock.shutdown(socket.SHUT_RDWR)
        wait_until(lambda: self.finished >= target)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that gave up (timeout, big body dropped) breaks the pipe: expected here

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.server_address[1]}{path}"


# Replies written as they are: bytes are written, numbers are pauses (s) between them.
PACED_REPLIES: dict[str, tuple[bytes | float, ...]] = {
    # an interim 103 and, apart from it, the final reply: the client has parsed the 103 alone
    # and must read the 201 from the socket, not from what it buffered
    "/early": (b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n", 0.2,
               b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
    # interim replies and the final one together
    "/early-burst": (b"HTTP/1.1 102 Processing\r\n\r\n" + b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
                     + b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok",),
    # interim replies past the client's bound, then a 200
    "/early-endless": (b"HTTP/1.1 103 Early Hints\r\n\r\n" * 17 + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",),
    # an interim reply, and the final one never comes
    "/early-hang": (b"HTTP/1.1 103 Early Hints\r\n\r\n", 10.0),
    # 101: what would follow is another protocol
    "/switch": (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",),
    # a whole reply, a byte every 100 ms: each read is quick, the reply is not (4 s)
    "/drip": (b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n", *(0.1, b"x") * 40),
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is observable
    disable_nagle_algorithm = True  # else every keep-alive reply stalls ~40 ms
    server: Receiver

    def log_message(self, *args: object) -> None:
        pass

    def finish(self) -> None:
        super().finish()
        with self.server.lock:
            self.server.connections.remove(self.request)
            self.server.finished += 1

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.server.lock:
            self.server.requests.append({"method": self.command, "path": self.path, "body": body,
                                         "headers": dict(self.headers), "port": self.client_address[1]})
        route = self.path.split("?", 1)[0]
        if route == "/slow":
            self.server.release.wait(10)
        if route == "/chunked":
            self._reply_chunked()
            return
        if route in PACED_REPLIES:
            self._reply_paced(PACED_REPLIES[route])
            return
        if route == "/nolength":  # a 204 with no Content-Length at all
            self.send_response(204)
            self.end_headers()
            return
        if route == "/close":  # closes, and says so
            self.close_connection = True
            self.send_response(200)
            self.send_header("Connection", "close")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if route == "/drop":  # closes without saying so: the client learns only on its next use
            self.close_connection = True
        status, payload, extra = {
            "/fail": (500, b"boom", {}),
            "/redirect": (302, b"", {"Location": "/ok"}),
            "/big": (200, b"x" * 200_000, {}),
            "/empty": (204, b"", {}),
        }.get(route, (200, b"ok", {}))
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _reply_paced(self, steps: tuple[bytes | float, ...]) -> None:
        for step in steps:
            if isinstance(step, bytes):
                self.wfile.write(step)
                self.wfile.flush()
            elif self.server.release.wait(step):  # a pause that is the point of the route; the test's end cuts it
                return

    def _reply_chunked(self) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for piece in (b"hello ", b"chunked ", b"world"):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def sender() -> Iterator[WebhookSender]:
    made = WebhookSender(allow_networks=LOOPBACK, pool_size=4)
    yield made
    made.close()


def test_a_2xx_is_a_success_and_the_request_arrives_as_sent(receiver, sender):
    result = sender.send(WebhookRequest(url=receiver.url("/ok"), headers={"Content-Type": "application/json"},
                                        body='{"text": "High risk trade"}', idempotency_key="run-1:0"))
    assert (result.ok, result.status, result.error) == (True, 200, None)
    assert result.ms > 0
    (got,) = receiver.requests
    assert got["method"] == "POST"
    assert got["body"] == b'{"text": "High risk trade"}'
    assert got["headers"]["Content-Type"] == "application/json"
    assert got["headers"]["Idempotency-Key"] == "run-1:0"


def test_the_idempotency_key_replaces_one_given_in_the_headers(receiver, sender):
    sender.send(WebhookRequest(url=receiver.url("/ok"), headers={"idempotency-key": "forged"},
                               idempotency_key="run-2:1"))
    headers = {k.lower(): v for k, v in receiver.requests[0]["headers"].items()}
    assert headers["idempotency-key"] == "run-2:1"


def test_the_method_is_taken_from_the_request(receiver, sender):
    assert sender.send(WebhookRequest(url=receiver.url("/ok"), method="put")).ok
    assert sender.send(WebhookRequest(url=receiver.url("/ok"), method="HEAD")).ok
    assert [r["method"] for r in receiver.requests] == ["PUT", "HEAD"]


def test_a_500_is_a_failure(receiver, sender):
    result = sender.send(WebhookRequest(url=receiver.url("/fail")))
    assert (result.ok, result.status, result.error) == (False, 500, "HTTP 500")


def test_a_redirect_is_not_followed_and_fails(receiver, sender):
    result = sender.send(WebhookRequest(url=receiver.url("/redirect")))
    assert (result.ok, result.status) == (False, 302)
    assert "redirect not followed" in result.error
    assert [r["path"] for r in receiver.requests] == ["/redirect"]


def test_a_slow_receiver_fails_at_the_timeout(receiver, sender):
    result = sender.send(WebhookRequest(url=receiver.url("/slow"), timeout_ms=1000))
    assert not result.ok and result.status is None
    assert "timeout" in result.error
    assert 900 <= result.ms < 3000


def test_a_reply_that_keeps_trickling_in_fails_at_the_timeout(receiver, sender):
    result = sender.send(WebhookRequest(url=receiver.url("/drip"), timeout_ms=1000))
    assert (result.ok, result.status) == (False, None)
    assert "timeout" in result.error
    assert 900 <= result.ms < 3000  # the drip would take 4 s


def test_a_timeout_below_one_second_is_clamped_up(receiver, sender):
    result = sender.send(WebhookRequest(url=receiver.url("/slow"), timeout_ms=5))
    assert not result.ok
    assert result.ms >= 900


def test_loopback_targets_are_refused_unless_allowed(receiver):
    strict = WebhookSender()
    try:
        for url in (receiver.url("/ok"), receiver.url("/ok", host="localhost"),
                    f"http://[::ffff:127.0.0.1]:{receiver.server_address[1]}/ok"):
            result = strict.send(WebhookRequest(url=url))
            assert not result.ok and result.status is None
            assert "target refused" in result.error
    finally:
        strict.close()
    assert receiver.requests == []


def test_the_connection_goes_to_the_address_that_was_checked(receiver):
    """A name resolved once, checked, and pinned: no second lookup can rebind it."""
    lookups: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    url = receiver.url("/ok", host="hooks.brokerflow.invalid")
    refused, allowed = WebhookSender(resolver=resolver), WebhookSender(LOOPBACK, resolver=resolver)
    try:
        assert "target refused" in refused.send(WebhookRequest(url=url)).error
        assert allowed.send(WebhookRequest(url=url)).ok
    finally:
        refused.close()
        allowed.close()
    assert lookups == ["hooks.brokerflow.invalid"] * 2
    assert receiver.requests[0]["headers"]["Host"].startswith("hooks.brokerflow.invalid")


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "file:///etc/passwd", "gopher://127.0.0.1:70/",
                                 "http:///no-host", "not a url", "http://127.0.0.1:99999/"])
def test_urls_that_are_not_plain_http_are_refused(sender, url):
    result = sender.send(WebhookRequest(url=url))
    assert not result.ok and result.status is None and result.error


def test_connections_are_reused_across_requests(receiver, sender):
    for _ in range(5):
        assert sender.send(WebhookRequest(url=receiver.url("/ok"))).ok
    assert len({r["port"] for r in receiver.requests}) == 1


def test_a_large_response_body_does_not_matter(receiver, sender):
    assert sender.send(WebhookRequest(url=receiver.url("/big"))).ok
    assert sender.send(WebhookRequest(url=receiver.url("/ok"))).ok


def test_concurrent_sends_from_many_threads_all_arrive(receiver, sender):
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: sender.send(WebhookRequest(url=receiver.url(f"/ok?n={n}"))),
                                range(40)))
    assert all(r.ok for r in results)
    assert sorted(r["path"] for r in receiver.requests) == sorted(f"/ok?n={n}" for n in range(40))


def test_error_texts_never_show_credentials_tokens_or_header_values(receiver, sender):
    secret = "s3cr3t-Tok3n"
    closed_port = free_port()
    results = [
        sender.send(WebhookRequest(url=f"http://user:{secret}@127.0.0.1:{closed_port}/h?token={secret}",
                                   headers={"Authorization": f"Bearer {secret}"})),
        sender.send(WebhookRequest(url=receiver.url(f"/fail?api_key={secret}"),
                                   headers={"X-Api-Key": secret})),
        sender.send(WebhookRequest(url=receiver.url("/ok"), headers={"X-Bad": f"{secret}\r\nInjected: 1"})),
        WebhookSender().send(WebhookRequest(url=f"http://u:{secret}@127.0.0.1:{closed_port}/?token={secret}")),
        sender.send(WebhookRequest(url=f"http://127.0.0.1:{receiver.server_address[1]}/slow?sig={secret}",
                                   timeout_ms=1000)),
    ]
    assert [r.ok for r in results] == [False] * 5
    for result in results:
        assert secret not in result.error
    assert "connection failed" in results[0].error


def test_a_request_carries_the_default_headers_and_the_callers_replace_them_whatever_their_case(receiver, sender):
    assert sender.send(WebhookRequest(url=receiver.url("/ok"))).ok
    assert sender.send(WebhookRequest(url=receiver.url("/ok"), headers={"user-agent": "crm-bridge/2"})).ok
    first, second = ({k.lower(): v for k, v in r["headers"].items()} for r in receiver.requests)
    assert (first["user-agent"], first["accept-encoding"], first["accept"]) == (
        "brokerflow-webhook/1", "identity", "*/*")
    assert second["user-agent"] == "crm-bridge/2"


def test_url_credentials_become_basic_auth_and_a_fragment_is_never_sent(receiver, sender):
    url = f"http://hook%40user:p%3Ass@127.0.0.1:{receiver.server_address[1]}/ok?x=1#frag"
    assert sender.send(WebhookRequest(url=url)).ok
    (got,) = receiver.requests
    assert got["headers"]["Authorization"] == "Basic aG9va0B1c2VyOnA6c3M="  # "hook@user:p:ss"
    assert got["path"] == "/ok?x=1"


def test_a_map_body_is_form_encoded(receiver, sender):
    assert sender.send(WebhookRequest(url=receiver.url("/ok"), body={"login": 7, "tag": ["a", "b"]})).ok
    (got,) = receiver.requests
    assert got["body"] == b"login=7&tag=a&tag=b"
    assert got["headers"]["Content-Type"] == "application/x-www-form-urlencoded"


def test_a_chunked_reply_is_read_to_its_end_and_the_connection_reused(receiver, sender):
    assert sender.send(WebhookRequest(url=receiver.url("/chunked"))).ok
    assert sender.send(WebhookRequest(url=receiver.url("/ok"))).ok
    assert len({r["port"] for r in receiver.requests}) == 1


def test_a_connection_the_server_closes_is_not_reused(receiver, sender):
    assert sender.send(WebhookRequest(url=receiver.url("/close"))).ok
    assert sender.send(WebhookRequest(url=receiver.url("/ok"))).ok
    first, second = (r["port"] for r in receiver.requests)
    assert first != second


def test_an_idle_connection_closed_by_the_server_is_replaced_before_use(receiver, sender):
    assert sender.send(WebhookRequest(url=receiver.url("/ok"))).ok
    receiver.shutdown_request_sockets()
    assert sender.send(WebhookRequest(url=receiver.url("/ok"))).ok
    assert len({r["port"] for r in receiver.requests}) == 2


def test_a_body_that_is_neither_text_nor_a_map_is_refused_unsent(receiver, sender):
    result = sender.send(WebhookRequest(url=receiver.url("/ok"), body=[1, 2]))  # type: ignore[arg-type]
    assert (result.ok, result.error) == (False, "body must be text or a map")
    assert receiver.requests == []


def test_a_path_with_spaces_and_unicode_is_percent_encoded(receiver, sender):
    assert sender.send(WebhookRequest(url=receiver.url("/ok/a b/é?q=x y"))).ok
    assert receiver.requests[0]["path"] == "/ok/a%20b/%C3%A9?q=x%20y"


def test_replies_without_a_body_leave_the_connection_reusable(receiver, sender):
    for request in (WebhookRequest(url=receiver.url("/ok"), method="HEAD"), WebhookRequest(url=receiver.url("/empty")),
                    WebhookRequest(url=receiver.url("/nolength")), WebhookRequest(url=receiver.url("/ok"))):
        assert sender.send(request).ok
    assert len({r["port"] for r in receiver.requests}) == 1


def test_a_request_meeting_a_connection_its_server_just_closed_is_sent_again_on_a_new_one(receiver, sender):
    for round_ in range(20):  # the close races the next request: detected before use, or retried
        assert sender.send(WebhookRequest(url=receiver.url(f"/drop?r={round_}"))).ok
        result = sender.send(WebhookRequest(url=receiver.url(f"/ok?r={round_}")))
        assert (result.ok, result.status) == (True, 200), result.error
    assert [r["path"] for r in receiver.requests] == [p for n in range(20) for p in (f"/drop?r={n}", f"/ok?r={n}")]


def test_interim_replies_are_read_past_to_the_final_reply(receiver, sender):
    for path, status in (("/early", 201), ("/early-burst", 202)):
        result = sender.send(WebhookRequest(url=receiver.url(path)))
        assert (result.ok, result.status, result.error) == (True, status, None)
    result = sender.send(WebhookRequest(url=receiver.url("/fail")))
    assert (result.ok, result.status) == (False, 500)  # its own reply: nothing of the last was left unread
    assert len({r["port"] for r in receiver.requests}) == 1  # and the connection carried all three


def test_endless_interim_replies_fail_the_request_and_its_connection_is_dropped(receiver, sender):
    result = sender.send(WebhookRequest(url=receiver.url("/early-endless")))
    assert (result.ok, result.status, result.error) == (False, 103, "HTTP 103")
    assert sender.send(WebhookRequest(url=receiver.url("/ok"))).ok  # its own reply, on a new connection
    assert len({r["port"] for r in receiver.requests}) == 2


def test_an_interim_reply_does_not_extend_the_timeout(receiver, sender):
    result = sender.send(WebhookRequest(url=receiver.url("/early-hang"), timeout_ms=1000))
    assert (result.ok, result.status) == (False, None)
    assert "timeout" in result.error
    assert 900 <= result.ms < 3000


def test_a_switch_of_protocols_fails_the_request(receiver, sender):
    result = sender.send(WebhookRequest(url=receiver.url("/switch")))
    assert (result.ok, result.status, result.error) == (False, 101, "HTTP 101")
    assert sender.send(WebhookRequest(url=receiver.url("/ok"))).ok
    assert len({r["port"] for r in receiver.requests}) == 2


def test_a_rules_framing_headers_cannot_smuggle_a_second_request(receiver, sender):
    body = "0\r\n\r\nGET /smuggled HTTP/1.1\r\nX-Pad: "
    for framing in ({"Transfer-Encoding": "chunked"}, {"Content-Length": "0"}):
        assert sender.send(WebhookRequest(url=receiver.url("/ok?a"), headers=framing, body=body)).ok
        result = sender.send(WebhookRequest(url=receiver.url("/ok?b"), headers={"Authorization": "Bearer s"}))
        assert (result.ok, result.status) == (True, 200)
    assert [r["path"] for r in receiver.requests] == ["/ok?a", "/ok?b"] * 2
    assert {r["body"] for r in receiver.requests if r["path"] == "/ok?a"} == {body.encode()}


def test_a_unicode_host_is_looked_up_and_sent_in_idna_2008(receiver):
    lookups: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    sender = WebhookSender(LOOPBACK, resolver=resolver)
    try:
        assert sender.send(WebhookRequest(url=receiver.url("/ok", host="faß.example"))).ok
        bad = sender.send(WebhookRequest(url=receiver.url("/ok", host="a..b")))
    finally:
        sender.close()
    assert lookups == ["xn--fa-hia.example"]  # not fass.example, another domain
    assert receiver.requests[0]["headers"]["Host"] == f"xn--fa-hia.example:{receiver.server_address[1]}"
    assert (bad.ok, bad.error) == (False, "invalid url")


def test_connections_are_reused_when_the_process_has_past_1024_descriptors(receiver, sender):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1300:  # room for the filler below
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096 if hard == resource.RLIM_INFINITY else min(hard, 4096), hard))
    filler = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        for _ in range(4):
            assert sender.send(WebhookRequest(url=receiver.url("/ok"))).ok
    finally:
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert len({r["port"] for r in receiver.requests}) == 1


def test_idle_connections_are_kept_for_a_bounded_number_of_origins():
    pool = IdleConnections(size=2, origins=2)
    sockets = [socket.socketpair() for _ in range(3)]
    try:
        for index, (ours, _theirs) in enumerate(sockets):
            pool.put(("http", f"h{index}", 80), Connection(ours))
        assert sockets[0][0].fileno() == -1  # the least recently used origin's connection was closed
        assert pool.take(("http", "h0", 80)) is None
        assert pool.take(("http", "h2", 80)).sock is sockets[2][0]
        pool.close()
        assert sockets[1][0].fileno() == -1
        late, _ = sockets[2]
        pool.put(("http", "h2", 80), Connection(late))  # handed back after close: closed, not kept
        assert late.fileno() == -1
    finally:
        for pair in sockets:
            for sock in pair:
                sock.close()
