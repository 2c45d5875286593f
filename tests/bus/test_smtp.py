"""The SMTP listener against hostile peers, over real sockets on loopback (smtplib or raw)."""

from __future__ import annotations

import logging
import smtplib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from brokerflow.bus.smtp import SmtpListener, split_endpoint
from tests.conftest import wait_until


class Inbox:
    """What the listener handed over, in order."""

    def __init__(self) -> None:
        self.mails: list[dict[str, Any]] = []

    def __call__(self, mail: Any) -> None:
        self.mails.append(dict(mail))


@pytest.fixture
def listen() -> Iterator[Any]:
    started: list[SmtpListener] = []

    def start(on_mail: Any = None, **options: Any) -> SmtpListener:
        listener = SmtpListener("127.0.0.1:0", on_mail or Inbox(), **options).start()
        started.append(listener)
        # the controller's own start-up probe is a session too; wait until it has gone
        wait_until(lambda: listener.open_sessions == 0)
        return listener

    yield start
    for listener in started:
        listener.stop()


def connect(listener: SmtpListener, timeout_s: float = 5.0) -> socket.socket:
    sock = socket.create_connection(split_endpoint(listener.endpoint), timeout=timeout_s)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\0" * 8)
    return sock


def read_reply(sock: socket.socket) -> bytes:
    """One reply line, or ``b""`` when the server closed the connection."""
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    return data


def send(listener: SmtpListener, data: bytes, to: tuple[str, ...] = ("support@alpha.example",)) -> None:
    with smtplib.SMTP(*split_endpoint(listener.endpoint), timeout=10) as client:
        client.sendmail("client@example.com", list(to), data)


def test_sessions_past_the_cap_are_answered_421_and_closed(listen):
    listener = listen(max_sessions=2)
    first, second = connect(listener), connect(listener)
    with first, second:
        assert read_reply(first).startswith(b"220") and read_reply(second).startswith(b"220")
        with connect(listener) as third:
            assert read_reply(third).startswith(b"421")
            assert third.recv(100) == b""  # and the server hung up
    wait_until(lambda: listener.open_sessions == 0)
    with connect(listener) as later:  # the slots came back when the sessions ended
        assert read_reply(later).startswith(b"220")


def test_an_idle_session_is_closed_after_the_idle_timeout(listen):
    listener = listen(idle_timeout_s=0.3)
    with connect(listener, timeout_s=5.0) as idle:
        assert read_reply(idle).startswith(b"220")
        assert idle.recv(100) == b""  # closed by the server well before the socket's 5 s timeout
    wait_until(lambda: listener.open_sessions == 0)


def test_a_header_block_over_the_cap_is_refused_552_and_one_under_it_is_accepted(listen):
    inbox = Inbox()
    listener = listen(inbox)
    padding = b"".join(b"X-Pad-%05d: %s\r\n" % (i, b"p" * 60) for i in range(1100))  # ~80 KiB of headers
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(listener, b"Subject: big\r\n" + padding + b"\r\nbody\r\n")
    assert refused.value.smtp_code == 552
    send(listener, b"Subject: fits\r\n" + padding[: 60 * 1024] + b"\r\n\r\nbody\r\n")
    assert [mail["subject"] for mail in inbox.mails] == ["fits"]


def test_a_message_being_handed_over_does_not_hold_up_other_sessions(listen):
    entered, release = threading.Event(), threading.Event()
    inbox = Inbox()

    def slow_hand_off(mail: Any) -> None:  # stands in for a parse that takes seconds
        entered.set()
        release.wait(10)
        inbox(mail)

    listener = listen(slow_hand_off)
    sender = threading.Thread(target=send, args=(listener, b"Subject: slow\r\n\r\nbody\r\n"), daemon=True)
    sender.start()
    try:
        assert entered.wait(10)
        with connect(listener, timeout_s=3.0) as other:
            assert read_reply(other).startswith(b"220")
            other.sendall(b"NOOP\r\n")
            assert read_reply(other).startswith(b"250")
    finally:
        release.set()
    sender.join(10)
    assert [mail["subject"] for mail in inbox.mails] == ["slow"]


def test_recipients_past_one_hundred_are_refused_452_and_the_mail_goes_to_the_first_hundred(listen):
    inbox = Inbox()
    listener = listen(inbox)
    with smtplib.SMTP(*split_endpoint(listener.endpoint), timeout=10) as client:
        client.ehlo()
        client.mail("client@example.com")
        codes = [client.rcpt(f"r{i}@example.com")[0] for i in range(102)]
        assert codes == [250] * 100 + [452, 452]
        client.data(b"Subject: many\r\n\r\nbody\r\n")
    assert len(inbox.mails[0]["to"].split(", ")) == 100


@pytest.fixture
def protocol_log() -> Iterator[logging.Logger]:
    """aiosmtpd's ``mail.log`` as a fresh process has it (no level), restored afterwards."""
    logger = logging.getLogger("mail.log")
    level = logger.level
    logger.setLevel(logging.NOTSET)
    yield logger
    logger.setLevel(level)


def test_the_protocol_log_stays_quiet_below_warning_by_default(listen, protocol_log, caplog):
    caplog.set_level(logging.INFO)
    send(listen(), b"Subject: private\r\n\r\nbody\r\n", to=("private-person@example.com",))
    assert [r for r in caplog.records if r.name == "mail.log"] == []
    assert "private-person" not in caplog.text


def test_an_operator_level_on_the_protocol_log_is_kept(listen, protocol_log, caplog):
    caplog.set_level(logging.INFO)
    protocol_log.setLevel(logging.INFO)
    send(listen(), b"Subject: traced\r\n\r\nbody\r\n", to=("traced@example.com",))
    assert protocol_log.level == logging.INFO and "traced@example.com" in caplog.text


def test_a_peers_text_in_the_protocol_log_is_cut(listen, protocol_log, caplog):
    caplog.set_level(logging.WARNING)
    listener = listen()
    with connect(listener, timeout_s=5.0) as peer:
        assert read_reply(peer).startswith(b"220")
        peer.sendall(b"X" * 400 + b"INJECTED\r\n")
        assert read_reply(peer).startswith(b"500")
    unrecognised = [r.getMessage() for r in caplog.records if r.name == "mail.log" and "unrecognised" in r.getMessage()]
    assert len(unrecognised) == 1
    assert "INJECTED" not in unrecognised[0] and "(408 chars)" in unrecognised[0]


def test_a_header_the_parser_fails_on_reaches_the_rules_as_sent(listen):
    inbox = Inbox()
    send(listen(inbox), b"From: Ana <ana@example.com>\r\nSubject: Withdrawal\r\nMessage-ID: <\r\n\r\nbody\r\n")
    [mail] = inbox.mails
    assert (mail["from"], mail["subject"], mail["message_id"], mail["body"]) == (
        "Ana <ana@example.com>", "Withdrawal", "<", "body")


def test_a_message_whose_parts_cannot_be_parsed_is_refused_for_good_with_554(listen, caplog):
    inbox = Inbox()
    listener = listen(inbox)
    bad_part = (b"Subject: s\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
                b"Content-Disposition: attachment; filename=;a*\r\n\r\nhi\r\n--x--\r\n")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(listener, bad_part)
    assert refused.value.smtp_code == 554 and inbox.mails == []
    assert "cannot be parsed (IndexError" in caplog.text
    send(listener, b"Subject: next\r\n\r\nbody\r\n")  # the listener goes on
    assert [mail["subject"] for mail in inbox.mails] == ["next"]


def test_a_message_that_cannot_be_handed_over_is_refused_for_now_with_451(listen):
    def stopped(_mail: Any) -> None:
        raise RuntimeError("actor stopped")

    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(listen(stopped), b"Subject: s\r\n\r\nbody\r\n")
    assert refused.value.smtp_code == 451


@pytest.mark.parametrize("content_type, payload", [
    (b"application/pdf", b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=\r\n"),
    (b"image/png", b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"),
    (b"message/rfc822", b"\r\nSubject: inner\r\n\r\ninner body\r\n"),
], ids=["pdf", "png", "message"])
def test_a_single_part_mail_without_text_has_an_empty_body(listen, content_type, payload):
    inbox = Inbox()
    send(listen(inbox), b"Subject: scan\r\nContent-Type: " + content_type + b"\r\n" + payload)
    assert [(mail["subject"], mail["body"]) for mail in inbox.mails] == [("scan", "")]


def test_a_single_part_text_mail_keeps_its_body(listen):
    inbox = Inbox()
    send(listen(inbox), b"Subject: csv\r\nContent-Type: text/csv\r\n\r\na,b\r\n1,2\r\n")
    assert inbox.mails[0]["body"] == "a,b\r\n1,2"


class Sending(threading.Thread):
    """One mail sent on its own thread; ``code`` is the server's answer to it, or the name of
    the error that ended the session (the server hung up, say)."""

    def __init__(self, listener: SmtpListener, subject: str) -> None:
        super().__init__(daemon=True)
        self.listener, self.subject, self.code = listener, subject, None

    def run(self) -> None:
        try:
            send(self.listener, b"Subject: " + self.subject.encode() + b"\r\n\r\nbody\r\n")
            self.code = 250
        except smtplib.SMTPDataError as exc:
            self.code = exc.smtp_code
        except (smtplib.SMTPException, OSError) as exc:
            self.code = type(exc).__name__


class Stopping(threading.Thread):
    """``listener.stop()`` on its own thread; ``handed_when_stopped`` is what the inbox held the
    moment ``stop()`` returned."""

    def __init__(self, listener: SmtpListener, inbox: Inbox) -> None:
        super().__init__(daemon=True)
        self.listener, self.inbox, self.handed_when_stopped = listener, inbox, None

    def run(self) -> None:
        self.listener.stop()
        self.handed_when_stopped = [mail["subject"] for mail in self.inbox.mails]

    def begun(self) -> bool:
        """stop() has marked the listener as stopping (or, without that mark, has returned)."""
        return getattr(self.listener.handler, "stopping", False) or not self.is_alive()


def held_hand_off(inbox: Inbox) -> tuple[Any, threading.Semaphore, threading.Event]:
    """A hand-off that blocks until released, as a slow actor tell would: each mail signals
    ``entered`` and waits on ``release``."""
    entered, release = threading.Semaphore(0), threading.Event()

    def hand_off(mail: Any) -> None:
        entered.release()
        assert release.wait(10)
        inbox(mail)

    return hand_off, entered, release


def one_mail_held(listen) -> tuple[SmtpListener, Inbox, threading.Event, Sending]:
    """A listener whose hand-off holds the mail "in flight" (being sent now) until ``release``."""
    inbox = Inbox()
    hand_off, entered, release = held_hand_off(inbox)
    listener = listen(hand_off)
    sender = Sending(listener, "in flight")
    sender.start()
    assert entered.acquire(timeout=10)
    return listener, inbox, release, sender


def test_a_mail_being_handed_over_when_the_listener_stops_gets_its_250_before_stop_returns(listen):
    listener, inbox, release, sender = one_mail_held(listen)
    stopper = Stopping(listener, inbox)
    stopper.start()
    try:
        wait_until(stopper.begun)
        assert stopper.is_alive()  # stop() waits for the message it found being handed over
    finally:
        release.set()
    stopper.join(10)
    sender.join(10)
    assert not stopper.is_alive() and sender.code == 250  # the sender was told, so it will not resend
    assert stopper.handed_when_stopped == ["in flight"]  # handed over before stop() returned


def test_a_mail_sent_while_the_listener_stops_is_answered_451_and_never_handed_over(listen):
    listener, inbox, release, holder = one_mail_held(listen)
    with smtplib.SMTP(*split_endpoint(listener.endpoint), timeout=10) as late:
        late.ehlo()
        late.mail("client@example.com")
        late.rcpt("support@alpha.example")
        stopper = Stopping(listener, inbox)
        stopper.start()
        wait_until(stopper.begun)
        try:
            code, _ = late.data(b"Subject: late\r\n\r\nbody\r\n")
        except smtplib.SMTPDataError as exc:
            code = exc.smtp_code
        except smtplib.SMTPServerDisconnected:
            code = "disconnected"
        finally:
            release.set()
    assert code == 451  # told to retry later, not dropped mid-session
    stopper.join(10)
    holder.join(10)
    assert (holder.code, stopper.handed_when_stopped) == (250, ["in flight"])
    assert [mail["subject"] for mail in inbox.mails] == ["in flight"]  # nothing handed after stop()


def test_a_mail_waiting_for_a_parse_thread_when_the_listener_stops_is_answered_451(listen):
    inbox = Inbox()
    hand_off, entered, release = held_hand_off(inbox)
    listener = listen(hand_off)
    holders = [Sending(listener, f"held {i}") for i in range(2)]  # both parse threads busy
    for holder in holders:
        holder.start()
    assert entered.acquire(timeout=10) and entered.acquire(timeout=10)
    queued = Sending(listener, "queued")
    queued.start()
    wait_until(lambda: listener.messages_in_flight == 3)  # its parse waits for a free thread
    stopper = Stopping(listener, inbox)
    stopper.start()
    try:
        wait_until(stopper.begun)
    finally:
        release.set()
    stopper.join(10)
    for sender in (*holders, queued):
        sender.join(10)
    assert [holder.code for holder in holders] == [250, 250] and queued.code == 451
    assert sorted(stopper.handed_when_stopped) == ["held 0", "held 1"]
    assert sorted(mail["subject"] for mail in inbox.mails) == ["held 0", "held 1"]
