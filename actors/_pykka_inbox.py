"""The one place that reads pykka's internals: an actor's mailbox and the envelopes in it.

Batches coalesce at the head of an actor's mailbox (``actors.base.coalesce``), and pykka has
no public way to look at what waits there. So this module relies on what pykka 4 keeps:

* ``Actor.actor_inbox`` is a ``queue.Queue``; its ``mutex`` guards its ``queue`` (a deque);
* each item is a ``pykka._envelope.Envelope`` with ``message`` and ``reply_to``, which is None
  for a ``tell`` and the caller's future for an ``ask``.

Keeping every such access here means a pykka upgrade that changes them breaks one small module,
and ``tests/actors/test_pykka_inbox.py`` checks each assumption against the installed pykka by
name, so the upgrade fails loudly there instead of quietly losing coalescing or a message.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any

import pykka

Inbox = queue.Queue  # what an actor's mailbox is; mailbox sizes and emptiness use its public API


def inbox_of(actor: pykka.Actor) -> Inbox:
    """The actor's own mailbox (pykka's ``actor_inbox``)."""
    return actor.actor_inbox  # type: ignore[return-value]


def take_head(inbox: Inbox, fits: Callable[[Any], bool]) -> list[Any]:
    """Take the told messages at the head of ``inbox`` while ``fits(message)`` says yes, in order.

    Only the owning actor takes from its inbox and other threads only append, so what is at the
    head under the queue's lock is the caller's to take. A message waiting for a reply (an
    ``ask``) is never taken: its caller waits on that very envelope. ``fits`` runs under the
    lock and must be quick; it sees each candidate once, and a yes means the message is taken.
    """
    taken: list[Any] = []
    with inbox.mutex:
        waiting = inbox.queue
        while waiting:
            head = waiting[0]
            if head.reply_to is not None or not fits(head.message):
                break
            waiting.popleft()
            taken.append(head.message)
    return taken
