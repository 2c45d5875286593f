"""The wire: ZeroMQ ingress and outbound PUB, the publisher library, webhook and SMTP edges.

See docs/internals.md, section ``bus``, for the contract.
"""

from bus.codec import decode, encode
from bus.ingress import Ingress
from bus.outbound import Outbound
from bus.publisher import Publisher
from bus.sequence import Deduplicator
from bus.webhook import WebhookRequest, WebhookResult, WebhookSender

__all__ = [
    "Deduplicator", "Ingress", "Outbound", "Publisher", "WebhookRequest", "WebhookResult", "WebhookSender",
    "decode", "encode",
]
