"""The e-mail edges: a relay client for ``email.send`` and a listener for received mail.

Both speak SMTP through well-kept libraries — ``smtplib`` to hand mail to the relay given by
``--smtp HOST:PORT``, ``aiosmtpd`` to accept mail on ``--smtp-listen HOST:PORT`` — so no SMTP
is parsed by hand here. The listener accepts mail for any recipient (it is meant to sit behind
the organisation's mail server, on a private address) and passes each message on as a plain
map ``{"from", "to", "subject", "body", "message_id"}``. A peer gets no more than its share:
sessions, idle time, recipients and the header block are capped, and parsing (super-linear in
the stdlib on crafted headers) runs on threads of its own, never on the listener's event loop.

Stopping neither drops nor doubles mail. ``SmtpListener.stop()`` first marks the listener as
stopping, so a message not yet handed over is answered ``451`` (the sender retries later)
instead; then, with the event loop still running, it waits (``STOP_TIMEOUT_S`` in all) for the
messages in flight to be answered — ``250`` for those already handed over, ``451`` for the rest
— and only then stops the loop and joins the parse threads. Cancelling a message mid-parse
would drop the sender's connection while its parse thread still handed the mail over: the rules
would run it, and the sender, having seen no ``250``, would send it again. Once ``stop()`` has
returned, ``on_mail`` is not called again.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from brokerflow.errors import ActionFailed

log = logging.getLogger("brokerflow.smtp")

DEFAULT_FROM = "brokerflow@localhost"
MAX_BODY_CHARS = 64 * 1024  # what rules see of a received body
MAX_SESSIONS = 64  # open SMTP sessions; one more is answered 421 and closed
MAX_HEADER_BYTES = 64 * 1024  # the header block; the stdlib parser is super-linear in it (552 beyond)
MAX_RECIPIENTS = 100  # per message, as RFC 5321 asks a server to accept at least (452 beyond)
PARSE_WORKERS = 2  # threads that parse received mail, off the listener's event loop
IDLE_TIMEOUT_S = 30.0  # a session silent this long (or one DATA transfer this slow) is closed
STOP_TIMEOUT_S = 5.0  # how long stop() waits, in all, for messages in flight to be answered
SHUTTING_DOWN = "451 4.3.2 Shutting down, try again later"


PROTOCOL_LOG_TEXT_MAX = 48  # characters of a peer's text that a protocol log line may quote


class _CutPeerText(logging.Filter):
    """aiosmtpd's warnings quote what a peer sent (an unrecognised command, up to 512 bytes):
    every text argument of a ``mail.log`` line is cut, so a peer cannot write into our logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, (str, bytes)) for a in record.args):
            record.args = tuple(_cut(a) if isinstance(a, (str, bytes)) else a for a in record.args)
        return True


def _cut(text: str | bytes) -> str:
    shown = text if isinstance(text, str) else text.decode("ascii", "replace")
    if len(shown) <= PROTOCOL_LOG_TEXT_MAX:
        return repr(shown)
    return f"{shown[:PROTOCOL_LOG_TEXT_MAX]!r}… ({len(shown)} chars)"


_PEER_TEXT_FILTER = _CutPeerText()


def quiet_protocol_log() -> None:
    """aiosmtpd logs every protocol line, addresses included, at INFO on ``mail.log``: raise that
    logger to WARNING unless an operator already gave it a level (set one to see the lines),
    and cut the peer's text in what it logs."""
    protocol_log = logging.getLogger("mail.log")
    if protocol_log.level == logging.NOTSET:
        protocol_log.setLevel(logging.WARNING)
    if _PEER_TEXT_FILTER not in protocol_log.filters:
        protocol_log.addFilter(_PEER_TEXT_FILTER)


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
    """The text rules see; ``""`` for a message with no text part (a lone PDF, say), whose
    content would be bytes or a nested message, not text."""
    part = message.get_body(preferencelist=("plain", "html")) if message.is_multipart() else message
    if part is None or part.get_content_maintype() != "text":
        return ""
    try:
        return str(part.get_content())[:MAX_BODY_CHARS]
    except (LookupError, ValueError):
        return ""


def _header(message: Any, name: str) -> str:
    """The header as the policy parses it (encoded words decoded). When the stdlib parser fails
    on it (it raises IndexError on ``Message-ID: <``, for one) rules get the text as sent,
    unfolded: they match text, and one malformed header should not cost the whole mail."""
    try:
        value = message.get(name)
        return "" if value is None else str(value)
    except Exception:  # noqa: BLE001 - the stdlib parser's own failures have no common class
        raw = next((value for key, value in message.raw_items() if key.lower() == name.lower()), "")
        text = raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return "".join(text.splitlines()).strip()


def parse_mail(data: bytes, envelope_from: str | None, recipients: list[str]) -> dict[str, Any]:
    """A received message as rules see it; envelope recipients win over the ``To`` header.

    Raises when the message's structure cannot be walked (a body part the parser chokes on,
    MIME nested past the recursion limit): a retry would fail alike, so the listener answers 554.
    """
    message = email.message_from_bytes(data, policy=email.policy.default)
    return {
        "from": _header(message, "From") or envelope_from or "",
        "to": ", ".join(recipients) or _header(message, "To"),
        "subject": _header(message, "Subject"),
        "body": _text_of(message).strip(),
        "message_id": _header(message, "Message-ID"),
    }


def header_block_bytes(data: bytes) -> int:
    """Bytes before the empty line that ends the header block (all of them when there is none)."""
    ends = [at for at in (data.find(b"\r\n\r\n"), data.find(b"\n\n")) if at >= 0]
    return min(ends) if ends else len(data)


class _Handler:
    """Parsing runs on a small pool, not on the event loop: the stdlib's header parser takes
    seconds on a crafted 64 KiB header, and on the loop those seconds would stall every session.

    One condition orders "hand off" and "stop": a parse thread hands a message over only if
    ``stopping`` was not yet set when it checked, and ``stop`` can wait for the messages still
    being answered and for the hand-offs still running."""

    def __init__(self, on_mail: Callable[[Mapping[str, Any]], None], max_header_bytes: int,
                 max_recipients: int) -> None:
        self.on_mail, self.max_header_bytes, self.max_recipients = on_mail, max_header_bytes, max_recipients
        self.pool = ThreadPoolExecutor(max_workers=PARSE_WORKERS, thread_name_prefix="smtp-parse")
        self._state = threading.Condition()
        self.stopping = False
        self._answering = 0  # handle_DATA calls not yet answered (event-loop side)
        self._receiving = 0  # _receive calls running (parse-thread side)

    async def handle_RCPT(self, _server: Any, _session: Any, envelope: Any, address: str,  # noqa: N802
                          rcpt_options: list[str]) -> str:
        if len(envelope.rcpt_tos) >= self.max_recipients:
            if not getattr(envelope, "too_many_recipients", False):  # logged once per message
                envelope.too_many_recipients = True
                log.warning("received mail: recipients past %d refused with 452", self.max_recipients)
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        data = envelope.original_content or envelope.content
        header_bytes = header_block_bytes(data)
        if header_bytes > self.max_header_bytes:
            log.warning("received mail refused: a header block of %d bytes (cap %d)", header_bytes,
                        self.max_header_bytes)
            return "552 5.3.4 Message header block too large"
        with self._state:
            if self.stopping:
                return SHUTTING_DOWN
            self._answering += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self.pool, self._receive, data, envelope.mail_from, list(envelope.rcpt_tos))
        except RuntimeError:  # the pool is shut down: the listener is stopping
            return SHUTTING_DOWN
        finally:
            # the reply is written in this same step of the loop, before any stop can cancel it
            self._done("_answering")

    def _receive(self, data: bytes, envelope_from: str | None, recipients: list[str]) -> str:
        """A message that cannot be parsed is refused for good (554); one that could not be
        handed over is refused for now (451), so the sender retries later."""
        with self._state:
            self._receiving += 1
        try:
            try:
                mail = parse_mail(data, envelope_from, recipients)
            except Exception as exc:  # noqa: BLE001 - the stdlib parser's own failures have no common class
                log.warning("received mail refused with 554: it cannot be parsed (%s, %d bytes)",
                            type(exc).__name__, len(data))
                return "554 5.6.0 Message cannot be parsed"
            with self._state:  # checked under the lock stop() sets it under: hand off, or 451
                if self.stopping:
                    log.info("received mail refused with 451: the listener is stopping (%d bytes)", len(data))
                    return SHUTTING_DOWN
            try:
                self.on_mail(mail)
            except Exception:  # noqa: BLE001 - the sender is told, the listener goes on
                log.exception("received mail could not be handed to the rules")
                return "451 Requested action aborted: local error in processing"
            return "250 Message accepted for delivery"
        finally:
            self._done("_receiving")

    def _done(self, counter: str) -> None:
        with self._state:
            setattr(self, counter, getattr(self, counter) - 1)
            self._state.notify_all()

    @property
    def in_flight(self) -> int:
        return self._answering

    def begin_stop(self) -> None:
        """From now on no message is handed over; those not yet handed are answered 451."""
        with self._state:
            self.stopping = True

    def wait_answered(self, deadline: float) -> bool:
        """Whether every message in flight got its reply (``False``: the deadline came first)."""
        with self._state:
            return self._state.wait_for(lambda: self._answering == 0, max(0.0, deadline - time.monotonic()))

    def close(self, deadline: float) -> bool:
        """Shut the pool down and wait for its running parses; ``False`` when the deadline came first."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        with self._state:
            return self._state.wait_for(lambda: self._receiving == 0, max(0.0, deadline - time.monotonic()))


class _Sessions:
    """The open sessions of one listener; touched only on its event-loop thread, so no lock."""

    def __init__(self, limit: int) -> None:
        self.limit, self.open, self.saturated = limit, 0, False


class _CappedSMTP(SMTP):
    """aiosmtpd's protocol with a cap on concurrent sessions: past it a peer is told ``421`` and
    disconnected before any session state exists, so idle or slow peers cannot pile up."""

    def __init__(self, handler: _Handler, sessions: _Sessions, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._sessions, self._refused = sessions, False

    def connection_made(self, transport: Any) -> None:
        sessions = self._sessions
        if sessions.open >= sessions.limit:
            self._refused = True
            if not sessions.saturated:  # once per saturation, not once per refused peer
                sessions.saturated = True
                log.warning("SMTP listener full (%d sessions): refusing new ones with 421", sessions.limit)
            transport.write(b"421 4.3.2 Too many connections, try again later\r\n")
            transport.close()
            return
        sessions.open += 1
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        self._sessions.open -= 1
        if self._sessions.open < self._sessions.limit:
            self._sessions.saturated = False
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    def eof_received(self) -> bool | None:
        return False if self._refused else super().eof_received()


class _BoundController(Controller):
    """aiosmtpd's threaded controller serving a socket bound up front: a port in use fails at
    once (not after the controller's ready timeout) and port 0 picks a free port."""

    def __init__(self, handler: _Handler, host: str, port: int, max_sessions: int, **kwargs: Any) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.create_server((host, port), family=family)
        self.sessions = _Sessions(max_sessions)
        super().__init__(handler, hostname=host, port=self.sock.getsockname()[1], **kwargs)

    def factory(self) -> SMTP:
        return _CappedSMTP(self.handler, self.sessions, **self.SMTP_kwargs)

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self.sock, ssl=self.ssl_context)


class SmtpListener:
    """aiosmtpd on its own thread; ``on_mail`` runs on one of its parse threads and must only hand off.

    ``max_bytes`` caps a message and ``max_header_bytes`` its header block (``552`` beyond
    either), ``max_recipients`` its envelope recipients (``452`` beyond); ``max_sessions`` caps
    concurrent sessions (``421`` beyond); ``idle_timeout_s`` closes a session that sends nothing
    for that long. ``stop()`` answers every message in flight before it closes (module docstring).
    """

    def __init__(self, endpoint: str, on_mail: Callable[[Mapping[str, Any]], None],
                 max_bytes: int = 1_048_576, *, max_sessions: int = MAX_SESSIONS,
                 idle_timeout_s: float = IDLE_TIMEOUT_S, max_header_bytes: int = MAX_HEADER_BYTES,
                 max_recipients: int = MAX_RECIPIENTS) -> None:
        host, port = split_endpoint(endpoint)
        quiet_protocol_log()
        self.handler = _Handler(on_mail, max_header_bytes, max_recipients)
        self.controller = _BoundController(self.handler, host, port, max_sessions,
                                           data_size_limit=max_bytes, timeout=idle_timeout_s, ready_timeout=5.0)

    @property
    def open_sessions(self) -> int:
        """Sessions open now (read from another thread: a snapshot, good for tests and stats)."""
        return self.controller.sessions.open

    @property
    def messages_in_flight(self) -> int:
        """Messages received and not yet answered (a snapshot from another thread, like ``open_sessions``)."""
        return self.handler.in_flight

    @property
    def endpoint(self) -> str:
        return f"{self.controller.hostname}:{self.controller.port}"

    def start(self) -> SmtpListener:
        self.controller.start()
        return self

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Answer the messages in flight (250 if handed over, else 451), then close; no hand-off
        starts after this returns. Waits at most ``timeout_s`` in all; a message whose parse
        outlasts it loses its connection, and its sender retries (it got no 250)."""
        deadline = time.monotonic() + timeout_s
        self.handler.begin_stop()
        if not self.handler.wait_answered(deadline):
            log.warning("SMTP listener stop: messages still unanswered after %.1fs; their connections are dropped",
                        timeout_s)
        try:
            self.controller.stop()
        except (AssertionError, RuntimeError):  # never started, or already stopped
            pass
        if not self.handler.close(deadline):
            log.warning("SMTP listener stop: a parse thread still running after %.1fs (no new hand-off starts)",
                        timeout_s)
        self.controller.sock.close()
