"""The e-mail edges: a relay client for ``email.send`` and a listener for received mail.

Both speak SMTP through well-kept libraries — ``smtplib`` to hand mail to the relay given by
``--smtp HOST:PORT``, ``aiosmtpd`` to accept mail on ``--smtp-listen HOST:PORT`` — so no SMTP
is parsed by hand here. The listener accepts mail for any recipient (it is meant to sit behind
the organisation's mail server, on a private address) and passes each message on as a plain
map ``{"from", "to", "subject", "body", "message_id"}``.
"""

from __future__ import annotations

import email
import email.policy
import logging
import smtplib
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from brokerflow.errors import ActionFailed

log = logging.getLogger("brokerflow.smtp")

DEFAULT_FROM = "brokerflow@localhost"
MAX_BODY_CHARS = 64 * 1024  # what rules see of a received body


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """``HOST:PORT`` -> ``(host, port)``; ``ValueError`` when it is not that."""
    host, _, port = str(endpoint).rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {endpoint!r}")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class Mail:
    sender: str
    to: str
    subject: str
    body: str

    def as_map(self) -> dict[str, str]:
        return {"from": self.sender, "to": self.to, "subject": self.subject, "body": self.body}


class SmtpRelay:
    """``send(mail)`` hands one message to the relay (blocking, thread-safe: a connection per call)."""

    def __init__(self, endpoint: str, timeout_s: float = 10.0) -> None:
        self.host, self.port = split_endpoint(endpoint)
        self.timeout_s = timeout_s

    def send(self, mail: Mail) -> float:
        """Milliseconds taken; ``ActionFailed`` with a short category when the relay refuses."""
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = mail.sender, mail.to, mail.subject
        message.set_content(mail.body)
        started = time.perf_counter()
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as client:
                client.send_message(message)
        except smtplib.SMTPRecipientsRefused:
            raise ActionFailed("the SMTP relay refused the recipients") from None
        except smtplib.SMTPException as exc:
            raise ActionFailed(f"the SMTP relay failed: {type(exc).__name__}") from None
        except OSError as exc:
            raise ActionFailed(f"the SMTP relay is unreachable: {type(exc).__name__}") from None
        return (time.perf_counter() - started) * 1000.0


def _text_of(message: Any) -> str:
    part = message.get_body(preferencelist=("plain", "html")) if message.is_multipart() else message
    if part is None:
        return ""
    try:
        return str(part.get_content())[:MAX_BODY_CHARS]
    except (LookupError, ValueError):
        return ""


def parse_mail(data: bytes, envelope_from: str | None, recipients: list[str]) -> dict[str, Any]:
    """A received message as rules see it; envelope recipients win over the ``To`` header."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    return {
        "from": str(message.get("From") or envelope_from or ""),
        "to": ", ".join(recipients) or str(message.get("To") or ""),
        "subject": str(message.get("Subject") or ""),
        "body": _text_of(message).strip(),
        "message_id": str(message.get("Message-ID") or ""),
    }


class _Handler:
    def __init__(self, on_mail: Callable[[Mapping[str, Any]], None]) -> None:
        self.on_mail = on_mail

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        try:
            self.on_mail(parse_mail(envelope.original_content or envelope.content,
                                    envelope.mail_from, list(envelope.rcpt_tos)))
        except Exception:  # noqa: BLE001 - the sender is told, the listener goes on
            log.exception("received mail could not be handed to the rules")
            return "451 Requested action aborted: local error in processing"
        return "250 Message accepted for delivery"


class _BoundController(Controller):
    """aiosmtpd's threaded controller serving a socket bound up front: a port in use fails at
    once (not after the controller's ready timeout) and port 0 picks a free port."""

    def __init__(self, handler: Any, host: str, port: int, **kwargs: Any) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.create_server((host, port), family=family)
        super().__init__(handler, hostname=host, port=self.sock.getsockname()[1], **kwargs)

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self.sock, ssl=self.ssl_context)


class SmtpListener:
    """aiosmtpd on its own thread; ``on_mail`` runs on that thread and must only hand off."""

    def __init__(self, endpoint: str, on_mail: Callable[[Mapping[str, Any]], None],
                 max_bytes: int = 1_048_576) -> None:
        host, port = split_endpoint(endpoint)
        self.controller = _BoundController(_Handler(on_mail), host, port, data_size_limit=max_bytes,
                                           ready_timeout=5.0)

    @property
    def endpoint(self) -> str:
        return f"{self.controller.hostname}:{self.controller.port}"

    def start(self) -> SmtpListener:
        self.controller.start()
        return self

    def stop(self) -> None:
        try:
            self.controller.stop()
        except (AssertionError, RuntimeError):  # never started, or already stopped
            pass
        self.controller.sock.close()
