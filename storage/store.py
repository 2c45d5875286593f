"""``Store``: the one storage interface the rest of brokerflow sees."""

from __future__ import annotations

import peewee

from brokerflow.storage.db import backend_of, open_database
from brokerflow.storage.migrations import migrate
from brokerflow.storage.models import Models
from brokerflow.storage.repositories import (
    EventRepository,
    FlowRepository,
    HistoryRepository,
    KycRepository,
    MetaRepository,
    NotificationRepository,
    ProcessRepository,
    ReferenceRepository,
    RuleRepository,
    RuleStateRepository,
    RunRepository,
    ScheduleRepository,
    TokenRepository,
    WebhookRepository,
)
from brokerflow.storage.repositories.base import Clock, wall_clock_ms
from brokerflow.storage.repositories.cluster import ClusterRepository


class Store:
    """The repositories of one database.

    Thread-safe: peewee gives every thread its own connection, opened on first use.
    ``close()`` closes the calling thread's connection; a worker thread that is done with the
    store may call ``close()`` too (the next use reconnects).
    """

    def __init__(self, url: str, db: peewee.Database, models: Models, clock: Clock = wall_clock_ms) -> None:
        self.url = url
        self.db = db
        self.backend = backend_of(db)
        parts = (db, models, clock)
        self.rules = RuleRepository(*parts)
        self.runs = RunRepository(*parts)
        self.reference = ReferenceRepository(*parts)
        self.kyc = KycRepository(*parts)
        self.tokens = TokenRepository(*parts)
        self.events = EventRepository(*parts)
        self.notifications = NotificationRepository(*parts)
        self.flows = FlowRepository(*parts)
        self.processes = ProcessRepository(*parts)
        self.meta = MetaRepository(*parts)
        self.schedules = ScheduleRepository(*parts)
        self.webhooks = WebhookRepository(*parts)
        self.rule_state = RuleStateRepository(*parts)
        self.history = HistoryRepository(*parts)
        self.cluster = ClusterRepository(*parts)  # serve --cluster; PostgreSQL only

    def ping(self) -> None:
        """One read of a real table; raises when the database does not answer (``/ready``)."""
        self.meta.get("schema_version")

    def close(self) -> None:
        if not self.db.is_closed():
            self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Store {self.backend}>"


def open_store(url: str, clock: Clock = wall_clock_ms) -> Store:
    """Open the database at ``url``, bring its schema up to date, return the facade.

    ``clock`` (unix ms) stamps created/updated times; tests pass a fixed one.
    """
    db = open_database(url)
    models = Models(db)
    try:
        migrate(db, models)
    except BaseException:
        if not db.is_closed():
            db.close()
        raise
    return Store(url, db, models, clock)
