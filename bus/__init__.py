"""The wire: ZeroMQ ingress and outbound PUB, the publisher library, webhook and SMTP edges.

See docs/internals.md, section ``bus``, for the contract.
"""

from brokerflow.bus.codec import decode, encode
from brokerflow.bus.ingress import Ingress
from brokerflow.bus.outbound import Outbound
from brokerflow.bus.publisher import Publisher
from brokerflow.bus.sequence import Deduplicator
from brokerflow.bus.webhook_sender import WebhookRequest, WebhookResult, WebhookSender

__all__ = [
    "Deduplicator", "Ingress", "Outbound", "Publisher", "WebhookRequest", "WebhookResult", "WebhookSender",
    "decode", "encode",
]
