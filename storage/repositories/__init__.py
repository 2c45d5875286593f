"""One repository per kind of data; each takes and returns plain dicts (the shapes the API replies with)."""

from brokerflow.storage.repositories.events import EventRepository
from brokerflow.storage.repositories.flows import FlowRepository
from brokerflow.storage.repositories.history import HistoryRepository
from brokerflow.storage.repositories.kyc import KycRepository
from brokerflow.storage.repositories.meta import MetaRepository
from brokerflow.storage.repositories.notifications import NotificationRepository
from brokerflow.storage.repositories.processes import ProcessRepository
from brokerflow.storage.repositories.reference import KINDS, ReferenceRepository
from brokerflow.storage.repositories.rules import RuleRepository
from brokerflow.storage.repositories.rulestate import RuleStateRepository
from brokerflow.storage.repositories.runs import RunRepository
from brokerflow.storage.repositories.schedules import ScheduleRepository
from brokerflow.storage.repositories.tokens import TokenRepository
from brokerflow.storage.repositories.webhooks import WebhookRepository

__all__ = [
    "KINDS",
    "EventRepository",
    "FlowRepository",
    "HistoryRepository",
    "KycRepository",
    "MetaRepository",
    "NotificationRepository",
    "ProcessRepository",
    "ReferenceRepository",
    "RuleRepository",
    "RuleStateRepository",
    "RunRepository",
    "ScheduleRepository",
    "TokenRepository",
    "WebhookRepository",
]
