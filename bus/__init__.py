"""The wire: ZeroMQ ingress and outbound PUB, the publisher library, webhook and SMTP edges.

See docs/internals.md, section ``bus``, for the contract. ``multipart_sender`` is public for the
management API's replies, which send the way the outbound PUB does (GIL held, see ``bus._libzmq``).
"""

from brokerflow.bus._libzmq import MultipartSender, multipart_sender
from brokerflow.bus.codec import decode, encode
from brokerflow.bus.ingress import Ingress
from brokerflow.bus.outbound import Outbound
from brokerflow.bus.publisher import Publisher
from brokerflow.bus.sequence import Deduplicator
from brokerflow.bus.webhook_sender import WebhookRequest, WebhookResult, WebhookSender

__all__ = [
    "Deduplicator", "Ingress", "MultipartSender", "Outbound", "Publisher", "WebhookRequest", "WebhookResult",
    "WebhookSender", "decode", "encode", "multipart_sender",
]
