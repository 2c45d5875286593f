"""The wire: ZeroMQ ingress and outbound PUB, the publisher library, the relay and its replay
journal, webhook and SMTP edges.

See docs/internals.md, section ``bus``, for the contract.
"""

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
    "Deduplicator", "Ingress", "Journal", "Outbound", "Publisher", "Relay", "RelaySettings", "ReplayServer",
    "WebhookRequest", "WebhookResult", "WebhookSender",
    "decode", "encode",
]
