"""The wire: ZeroMQ ingress and outbound PUB, the publisher library, the relay and its replay
journal, webhook and SMTP edges.

See docs/internals.md, section ``bus``, for the contract. ``multipart_sender`` is public for the
management API's replies, which send the way the outbound PUB does (GIL held, see ``bus._libzmq``).
"""

from brokerflow.bus._libzmq import MultipartSender, multipart_sender
from brokerflow.bus.codec import decode, encode
from brokerflow.bus.ingress import Ingress
from brokerflow.bus.journal import Journal
from brokerflow.bus.outbound import Outbound
from brokerflow.bus.publisher import Publisher
from brokerflow.bus.relay import Relay, RelaySettings
from brokerflow.bus.replay_server import ReplayServer
from brokerflow.bus.sequence import Deduplicator
from brokerflow.bus.webhook_sender import WebhookRequest, WebhookResult, WebhookSender

__all__ = [
    "Deduplicator", "Ingress", "Journal", "MultipartSender", "Outbound", "Publisher", "Relay", "RelaySettings",
    "ReplayServer", "WebhookRequest", "WebhookResult", "WebhookSender", "decode", "encode", "multipart_sender",
]
