"""The webhook sender over TLS: the certificate is verified against the URL's host name."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trustme

from brokerflow.bus.webhook_sender import WebhookRequest, WebhookSender

LOOPBACK = ["127.0.0.0/8"]


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.hosts.append(self.headers["Host"])  # type: ignore[attr-defined]
        self.server.ports.append(self.client_address[1])  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca, tmp_path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def https_server(ca) -> Iterator[ThreadingHTTPServer]:
    """An HTTPS receiver on 127.0.0.1 whose certificate names ``localhost`` only."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    server.daemon_threads = True
    server.hosts, server.ports = [], []  # type: ignore[attr-defined]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.handle_error = lambda *args: None  # a refused handshake is expected here
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def _url(server: ThreadingHTTPServer, host: str) -> str:
    return f"https://{host}:{server.server_address[1]}/hook"


def test_a_certificate_from_a_trusted_ca_for_the_host_is_accepted(https_server, ca_file):
    sender = WebhookSender(LOOPBACK, ca_certs=ca_file)
    try:
        for _ in range(2):  # the second request reuses the TLS connection
            result = sender.send(WebhookRequest(url=_url(https_server, "localhost"), body="{}"))
            assert (result.ok, result.status) == (True, 200)
    finally:
        sender.close()
    assert https_server.hosts == [f"localhost:{https_server.server_address[1]}"] * 2
    assert len(set(https_server.ports)) == 1  # one TLS connection carried both


def test_a_certificate_for_another_host_is_refused(https_server, ca_file):
    sender = WebhookSender(LOOPBACK, ca_certs=ca_file)
    try:
        result = sender.send(WebhookRequest(url=_url(https_server, "127.0.0.1"), body="{}"))
    finally:
        sender.close()
    assert (result.ok, result.status) == (False, None)
    assert result.error.startswith("tls error")
    assert https_server.hosts == []


def test_a_certificate_from_an_unknown_ca_is_refused(https_server, tmp_path):
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    for sender in (WebhookSender(LOOPBACK), WebhookSender(LOOPBACK, ca_certs=str(other))):
        try:
            result = sender.send(WebhookRequest(url=_url(https_server, "localhost"), body="{}"))
        finally:
            sender.close()
        assert not result.ok and result.error.startswith("tls error")
    assert https_server.hosts == []


def test_an_extra_ca_is_trusted_besides_the_system_bundle(https_server, ca_file):
    """``serve --webhook-ca``: an internal CA's certificate is accepted; public ones still would be."""
    from brokerflow.workflow.policies import webhook_delivery as policy

    refused = WebhookSender(LOOPBACK).send(WebhookRequest(url=_url(https_server, "localhost"), body="{}"))
    assert (refused.ok, refused.kind) == (False, policy.KIND_CERTIFICATE)  # final: it would be refused again
    sender = WebhookSender(LOOPBACK, extra_ca=ca_file)
    try:
        result = sender.send(WebhookRequest(url=_url(https_server, "localhost"), body="{}"))
        assert (result.ok, result.status) == (True, 200)
        store = sender._tls_context().cert_store_stats()["x509_ca"]
        assert store > 1  # the system bundle's CAs and the extra one
    finally:
        sender.close()


def test_an_unreadable_extra_ca_fails_at_once(tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ssl.SSLError):
        WebhookSender(LOOPBACK, extra_ca=str(bad))
