"""One repository per kind of data; each takes and returns plain dicts (the PROTOCOL shapes)."""

from storage.repositories.events import EventRepository
from storage.repositories.flows import FlowRepository
from storage.repositories.kyc import KycRepository
from storage.repositories.meta import MetaRepository
from storage.repositories.notifications import NotificationRepository
from storage.repositories.processes import ProcessRepository
from storage.repositories.reference import KINDS, ReferenceRepository
from storage.repositories.rules import RuleRepository
from storage.repositories.runs import RunRepository
from storage.repositories.schedules import ScheduleRepository
from storage.repositories.tokens import TokenRepository

__all__ = [
    "KINDS",
    "EventRepository",
    "FlowRepository",
    "KycRepository",
    "MetaRepository",
    "NotificationRepository",
    "ProcessRepository",
    "ReferenceRepository",
    "RuleRepository",
    "RunRepository",
    "ScheduleRepository",
    "TokenRepository",
]
