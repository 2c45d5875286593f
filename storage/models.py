"""The tables, as peewee model templates that each ``Store`` subclasses onto its own database.

Binding is per store, never global: ``Models(db)`` makes a fresh subclass of every template
with ``Meta.database = db``, so two stores on two databases in one process (tests, a CLI
command next to an engine) can never send a query to the other's database. The templates
themselves are bound to nothing and are not used directly.

JSON columns are TEXT on every backend (``JSONText``), so the raw fast paths read and write
exactly what the ORM does. Times are unix milliseconds in BIGINT columns.
"""

from __future__ import annotations

import json

from peewee import (
    SQL,
    AutoField,
    BigAutoField,
    BigIntegerField,
    BlobField,
    BooleanField,
    CompositeKey,
    DoubleField,
    IntegerField,
    Model,
    TextField,
)

from brokerflow.workflow.catalog import DEFAULT_PRIORITY

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(value: object) -> str:
    """Compact JSON text (one shared encoder: ``json.dumps`` with options builds one per call)."""
    return _ENCODER.encode(value)


class JSONText(TextField):
    """A JSON document stored as text."""

    def db_value(self, value):
        return None if value is None else dumps(value)

    def python_value(self, value):
        return None if value is None else json.loads(value)


class _Template(Model):
    class Meta:
        database = None


class Rule(_Template):
    id = AutoField()
    name = TextField(null=True)
    brand = TextField(null=True, index=True)
    trigger = TextField(null=True, index=True)
    status = TextField(index=True)
    priority = IntegerField(default=DEFAULT_PRIORITY)
    conditions = JSONText()
    actions = JSONText()
    schedule = JSONText(null=True)
    run_as = BigIntegerField(null=True)
    exec_roles = JSONText(null=True)
    cooldown = JSONText(null=True)  # {"key", "seconds"} or null
    version = IntegerField()
    created_at = BigIntegerField()
    updated_at = BigIntegerField()
    created_by = TextField(null=True)
    updated_by = TextField(null=True)

    class Meta:
        table_name = "rules"


class Run(_Template):
    id = BigIntegerField(primary_key=True)
    rule_id = BigIntegerField(null=True, index=True)
    rule_version = IntegerField(null=True)
    brand = TextField(null=True, index=True)
    trigger = TextField(null=True)
    event_id = TextField(null=True)
    status = TextField(index=True)
    error = TextField(null=True)
    actions = JSONText()
    started_at = BigIntegerField(null=True)
    finished_at = BigIntegerField(null=True)
    run_as = BigIntegerField(null=True)  # since schema 2
    # The (source, seq) of the bus event that caused the run (since schema 4): one run per
    # (event, rule) whatever a replay delivers twice; the unique index is made by migration 4.
    source = TextField(null=True)
    seq = BigIntegerField(null=True)

    class Meta:
        table_name = "runs"


class IdBlock(_Template):
    name = TextField(primary_key=True)
    next = BigIntegerField()

    class Meta:
        table_name = "id_blocks"


class Group(_Template):
    group = TextField(primary_key=True)
    brand = TextField(null=True, index=True)
    data = JSONText()

    class Meta:
        table_name = "groups"


class Account(_Template):
    login = BigIntegerField(primary_key=True)
    group = TextField(null=True, index=True)
    customer_id = BigIntegerField(null=True, index=True)
    data = JSONText()

    class Meta:
        table_name = "accounts"


class Customer(_Template):
    id = BigIntegerField(primary_key=True)
    brand = TextField(null=True, index=True)
    data = JSONText()

    class Meta:
        table_name = "customers"


class Manager(_Template):
    id = BigIntegerField(primary_key=True)
    brand = TextField(null=True, index=True)
    data = JSONText()

    class Meta:
        table_name = "managers"


class Rate(_Template):
    currency = TextField(primary_key=True)
    data = JSONText()

    class Meta:
        table_name = "rates"


class KycStepTemplate(_Template):
    id = AutoField()
    brand = TextField()
    step_code = TextField()
    level = IntegerField(null=True)
    required = BooleanField(null=True)
    active = BooleanField(null=True)
    title = TextField(null=True)
    data = JSONText()

    class Meta:
        table_name = "kyc_step_templates"
        indexes = ((("brand", "step_code"), True),)


class KycProfile(_Template):
    customer_id = BigIntegerField(primary_key=True)
    brand = TextField(null=True, index=True)
    required_level = IntegerField(default=0)
    current_level = IntegerField(default=0)
    steps = JSONText()

    class Meta:
        table_name = "kyc_profiles"


class ApiToken(_Template):
    id = AutoField()
    token_hash = TextField(unique=True)
    role = TextField()
    brand = TextField(null=True)
    name = TextField(null=True)
    created_at = BigIntegerField()
    revoked = BooleanField(default=False)

    class Meta:
        table_name = "api_tokens"


class ProcessedEvent(_Template):
    id = BigAutoField()  # insertion order: "newest" is the highest id
    event_id = TextField(unique=True)
    seen_at = BigIntegerField()

    class Meta:
        table_name = "processed_events"


class Checkpoint(_Template):
    """Per source and partition, the seq below which every event's runs are logged (schema 4)."""

    source = TextField()
    partition = IntegerField()
    seq = BigIntegerField()
    updated_at = BigIntegerField(default=0)

    class Meta:
        table_name = "checkpoints"
        primary_key = CompositeKey("source", "partition")


class SourceSeq(_Template):
    source = TextField(primary_key=True)
    last_seq = BigIntegerField()
    # When the ingress last stored a change of this source: the newest rows are the sources kept.
    seen_at = BigIntegerField(default=0, index=True, constraints=[SQL("DEFAULT 0")])

    class Meta:
        table_name = "source_seqs"


class Notification(_Template):
    id = BigAutoField()
    manager_id = BigIntegerField(null=True, index=True)
    message = TextField(null=True)
    rule_id = BigIntegerField(null=True)
    run_id = BigIntegerField(null=True)
    brand = TextField(null=True)
    created_at = BigIntegerField()

    class Meta:
        table_name = "notifications"


class Flow(_Template):
    id = AutoField()
    name = TextField()
    version = IntegerField()
    definition = JSONText()
    created_at = BigIntegerField()
    created_by = TextField(null=True)
    deleted = BooleanField(default=False)  # hidden from listing; versions stay loadable

    class Meta:
        table_name = "flows"
        indexes = ((("name", "version"), True),)


class Process(_Template):
    pid = TextField(primary_key=True)
    state = JSONText()
    updated_at = BigIntegerField()
    ended = BooleanField(default=False, index=True)

    class Meta:
        table_name = "processes"


class MetaEntry(_Template):
    key = TextField(primary_key=True)
    value = TextField(null=True)

    class Meta:
        table_name = "meta"


class ScheduleClaim(_Template):
    id = BigAutoField()
    rule_id = BigIntegerField()
    due_at = BigIntegerField()
    claimed_at = BigIntegerField()

    class Meta:
        table_name = "schedule_claims"
        indexes = ((("rule_id", "due_at"), True),)


class RuleCooldown(_Template):
    """When a rule last ran for one value of its cooldown key (``workflow.rules.cooldown``)."""

    id = BigAutoField()
    rule_id = BigIntegerField()
    key = TextField()  # windows.key_text of the value
    fired_ms = BigIntegerField(index=True)

    class Meta:
        table_name = "rule_cooldowns"
        indexes = ((("rule_id", "key"), True),)


class WindowEntry(_Template):
    """One event of an aggregate stream (``workflow.rules.windows``): its by value, ts and field value,
    and the event's identity (``Event.key``), by which a replay of it is recognised after a reload;
    NULL in rows stored before schema 8 (they count, they just cannot recognise a replay)."""

    id = BigAutoField()
    brand = TextField()
    stream = TextField()  # "trigger|by|field"
    key = TextField()
    ts = BigIntegerField()
    value = DoubleField(null=True)
    event_key = TextField(null=True)

    class Meta:
        table_name = "window_entries"
        indexes = ((("brand", "stream", "ts"), False),)


class EventHistory(_Template):
    """Processed events kept ``--event-retention-hours`` for backtests: one row per chunk of events
    of one trigger written together, the events as one msgpack list (a row per event cost more
    than the events' encoding)."""

    id = BigAutoField()
    ts = BigIntegerField()  # the chunk's oldest event time (ts, else when it was received)
    ts_max = BigIntegerField(index=True)  # its newest: the retention deletes by it
    trigger = TextField()
    events = IntegerField()
    body = BlobField()  # msgpack [[ts, topic, event, record, id], ...]

    class Meta:
        table_name = "event_history"
        indexes = ((("trigger", "ts"), False),)


class WebhookRetry(_Template):
    """A webhook delivery waiting for its next attempt (PROTOCOL section 10); since schema 6."""

    id = BigAutoField()
    run_id = BigIntegerField()
    action_index = IntegerField()
    rule_id = BigIntegerField(null=True)
    brand = TextField(null=True)
    due_at = BigIntegerField(index=True)
    claimed_until = BigIntegerField(default=0)  # a sender holds it until then (0: nobody)
    delivery = JSONText()  # the request and its retry policy (``actors.webhook_delivery.Delivery``)
    attempts = JSONText()  # [{"at", "http_status" | "error", "ms"}], oldest first
    job = JSONText()  # the run to continue once the webhook has an outcome
    created_at = BigIntegerField()

    class Meta:
        table_name = "webhook_retries"
        indexes = ((("run_id", "action_index"), True),)


class WebhookDeadLetter(_Template):
    """A webhook delivery whose attempts are exhausted, kept to be retried or discarded; since schema 6."""

    id = BigAutoField()
    run_id = BigIntegerField()
    action_index = IntegerField()
    rule_id = BigIntegerField(null=True)
    brand = TextField(null=True, index=True)
    url = TextField()
    delivery = JSONText()
    attempts = JSONText()
    last_error = TextField(null=True)
    claimed_until = BigIntegerField(default=0)  # a redelivery holds it until then
    created_at = BigIntegerField()

    class Meta:
        table_name = "webhook_dead_letters"
        indexes = ((("run_id", "action_index"), True),)


class ClusterMember(_Template):
    """A ``serve --cluster`` member: where its API answers, and its last heartbeat (the
    database's clock, unix ms); since schema 7."""

    member = TextField(primary_key=True)
    api_endpoint = TextField()
    pid = IntegerField(default=0)
    host = TextField(default="")
    heartbeat_ms = BigIntegerField()
    started_ms = BigIntegerField()

    class Meta:
        table_name = "cluster_members"


class PartitionLease(_Template):
    """Who owns a partition until when (the database's clock); ``epoch`` grows with every new
    owner. A free lease has no owner; since schema 7."""

    partition = IntegerField(primary_key=True)
    owner = TextField(null=True)
    expires_at_ms = BigIntegerField(default=0)
    epoch = BigIntegerField(default=0)

    class Meta:
        table_name = "partition_leases"


class ClusterChange(_Template):
    """A rule, flow or reference change made through one member, for the others to apply; since schema 7."""

    id = BigAutoField()
    member = TextField()
    change = TextField()  # JSON: {"change": "rules" | "reference" | "flows", ...}
    created_ms = BigIntegerField()

    class Meta:
        table_name = "cluster_changes"


TEMPLATES = (
    Rule, Run, IdBlock, Group, Account, Customer, Manager, Rate, KycStepTemplate, KycProfile,
    ApiToken, ProcessedEvent, SourceSeq, Notification, Flow, Process, MetaEntry, ScheduleClaim, Checkpoint,
    RuleCooldown, WindowEntry, EventHistory, WebhookRetry, WebhookDeadLetter, ClusterMember, PartitionLease,
    ClusterChange,
)


class Models:
    """One store's model classes: a subclass of every template bound to ``database``."""

    def __init__(self, database) -> None:
        self.database = database
        for template in TEMPLATES:
            meta = type("Meta", (), {"database": database, "table_name": template._meta.table_name})
            bound = type(template.__name__, (template,), {"Meta": meta, "__module__": __name__})
            setattr(self, template.__name__, bound)

    def all(self) -> list[type[Model]]:
        return [getattr(self, template.__name__) for template in TEMPLATES]
