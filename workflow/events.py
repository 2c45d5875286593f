"""Bus events as plain data, and the one place their shape is checked.

A frame that fails here is counted and logged by the ingress and never reaches a rule, so the
checks are strict about types (``True`` is not an int, a login is never a string) and name the
offending key in the reason — never a value, and never a name the sender made up (an unknown
topic or event name, an extra record key is reported by its length only).

The checks also refuse what the engine could not carry further: an int outside the signed
64-bit range (``seq``, ``ts``, any int of the record) would overflow SQLite and PostgreSQL
columns and the de-duplication state's storage on every poll after it; ``seq`` is also never
negative. ``id`` and ``source`` are at most ``MAX_ID_CHARS`` characters, since both are kept in
the de-duplication window and its table. An empty ``id`` counts as no id: taken as an id, every
event after the first that carried one would be a duplicate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from brokerflow.errors import MalformedEvent

TOPICS = (
    "trade.push", "account.push", "customer.push", "kyc.step.push",
    "group.push", "manager.push", "rate.push",
)
REFERENCE_TOPICS = {
    "group.push": "group", "account.push": "account", "customer.push": "customer",
    "manager.push": "manager", "rate.push": "rate",
}
RECORD_EVENTS = (
    "EV_RECORD_ADD", "EV_RECORD_UPDATE", "EV_RECORD_DELETE",
    "EV_RECORD_ACTIVATE_TRADE", "EV_RECORD_CLOSE_TRADE",
)
TRADE_CMDS = ("OP_BUY", "OP_SELL", "OP_BALANCE_IN", "OP_BALANCE_OUT")

_INT, _NUM, _STR, _BOOL = "int", "number", "str", "bool"

# (required, optional) record fields per topic with their types.
RECORD_SCHEMAS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "trade.push": (
        {"order": _INT, "login": _INT, "cmd": _STR},
        {"volume": _INT, "symbol": _STR, "open_price": _NUM, "close_price": _NUM, "profit": _NUM,
         "comment": _STR, "amount_usd": _NUM},
    ),
    "account.push": (
        {"login": _INT},
        {"group": _STR, "name": _STR, "email": _STR, "country": _STR, "enable": _BOOL,
         "leverage": _INT, "customer_id": _INT},
    ),
    "customer.push": (
        {"id": _INT},
        {"brand": _STR, "email": _STR, "country": _STR, "language": _STR, "kyc_status": _STR,
         "kyc_current_level": _INT, "risk_level": _STR, "status": _STR,
         "assigned_manager_id": _INT, "manager_id": _INT},
    ),
    "kyc.step.push": (
        {"customer_id": _INT, "step_code": _STR, "status": _STR},
        {"level": _INT},
    ),
    "group.push": ({"group": _STR}, {"brand": _STR, "currency": _STR}),
    "manager.push": ({"id": _INT}, {"name": _STR, "email": _STR, "enabled": _BOOL, "brand": _STR}),
    "rate.push": ({"currency": _STR, "usd": _NUM}, {}),
}
_EVENT_REQUIRED = {"trade.push", "account.push", "customer.push"}

# What storage can hold: BIGINT (PostgreSQL) and INTEGER (SQLite) are signed 64-bit.
INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1
# An integer ``id`` is text to the engine; msgpack carries unsigned 64-bit ints too.
_ID_INT_MAX = (1 << 64) - 1
MAX_ID_CHARS = 256  # ``id`` and ``source``


@dataclass(frozen=True, slots=True)
class Event:
    """One validated bus event; ``depth`` counts internal echoes so loops can be bounded."""

    topic: str
    event: str | None
    record: dict[str, Any]
    source: str | None = None
    seq: int | None = None
    id: str | None = None
    ts_ms: int | None = None
    received_ms: int = 0
    depth: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The id the run log records: the publisher's id, else its (source, seq)."""
        if self.id:
            return self.id
        if self.source is not None and self.seq is not None:
            return f"{self.source}:{self.seq}"
        return f"local:{self.received_ms}:{id(self):x}"


def _type_ok(value: Any, kind: str) -> bool:
    if kind == _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == _NUM:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == _STR:
        return isinstance(value, str)
    return isinstance(value, bool)


_PY_TYPES: dict[str, type | tuple[type, ...]] = {_INT: int, _NUM: (int, float), _STR: str, _BOOL: bool}
# Per topic, (name, python types, kind, bool-is-not-a-number) for required and optional fields:
# checked for every event on the ingress thread, so the table is built once.
_COMPILED = {
    topic: tuple(tuple((name, _PY_TYPES[kind], kind, kind in (_INT, _NUM)) for name, kind in part.items())
                 for part in schema)
    for topic, schema in RECORD_SCHEMAS.items()
}


# The same tables as exact types, for the fast path: a value whose class is exactly one of these
# passes (``type(True) is bool`` never matches ``int``); anything else takes the full check.
_EXACT = {_INT: frozenset({int}), _NUM: frozenset({int, float}), _STR: frozenset({str}), _BOOL: frozenset({bool})}
_FAST = {
    topic: tuple(tuple((name, _EXACT[kind]) for name, kind in part.items()) for part in schema)
    for topic, schema in RECORD_SCHEMAS.items()
}
_RECORD_EVENT_SET = frozenset(RECORD_EVENTS)


def _wrong_type(topic: str, name: str, kind: str, value: Any) -> MalformedEvent:
    return MalformedEvent(f"{topic}: record.{name} must be {kind}, got {type(value).__name__}")


def _record_is_plain(topic: str, record: dict) -> bool:
    """Does ``record`` pass every check with exact types (the shape every publisher sends)?

    Whether the types pass depends only on the record's keys and the exact types of its values,
    and a publisher sends one shape over and over: that part is computed once per (topic, keys,
    types) and then found by one lookup of a tuple built in C (bounded against ever new shapes,
    and never holding a shape of more than 64 keys or 1 KiB of key text).
    The shape also names its int values, and each of those takes one range comparison per event.
    """
    shape = (topic, *record, *map(type, record.values()))
    ints = _PLAIN_SHAPES.get(shape)
    if ints is None:
        ints = _plain_shape_ints(topic, record)
        if ints is None:
            return False
        # A shape is kept only when its keys are small: a cache of 1024 shapes of a megabyte of
        # keys each would hold a gigabyte. A record over the bounds is checked each time instead.
        if len(record) <= _SHAPE_MAX_KEYS and sum(map(len, record)) <= _SHAPE_MAX_KEY_CHARS:
            if len(_PLAIN_SHAPES) >= _PLAIN_SHAPES_MAX:
                _PLAIN_SHAPES.clear()
            _PLAIN_SHAPES[shape] = ints
    for name in ints:  # INT_MIN <= value <= INT_MAX, with the values as constants
        if not -0x8000_0000_0000_0000 <= record[name] <= 0x7FFF_FFFF_FFFF_FFFF:
            return False
    return True


# (topic, *keys, *value types) -> the keys whose values are ints, for plain shapes only; keys and
# types never compare equal to each other's halves wrongly: the split is at the middle, and a
# non-str key makes a shape not plain anyway.
_PLAIN_SHAPES: dict[tuple, tuple[str, ...]] = {}
_PLAIN_SHAPES_MAX = 1024
_SHAPE_MAX_KEYS = 64
_SHAPE_MAX_KEY_CHARS = 1024


def _plain_shape_ints(topic: str, record: dict) -> tuple[str, ...] | None:
    """The keys of ``record``'s int values when its shape is plain, else None."""
    for key in record:
        if type(key) is not str:
            return None
    required, optional = _FAST[topic]
    for name, allowed in required:
        if type(record.get(name)) not in allowed:
            return None
    for name, allowed in optional:
        value = record.get(name)
        if value is not None and type(value) not in allowed:
            return None
    if topic in REFERENCE_TOPICS and not _SCALARS.issuperset(map(type, record.values())):
        return None  # a stored record with a container or binary value: checked in full each time
    return tuple(key for key, value in record.items() if isinstance(value, int) and type(value) is not bool)


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _unstorable(value: Any) -> str | None:
    """What in ``value`` a stored (JSON) document cannot hold — binary data, a msgpack extension
    or timestamp, a non-string key — named by type; None when all of it can. Iterative: msgpack
    nests deeper than Python recurses."""
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind in _SCALARS:
            continue
        if kind is list:
            pending.extend(item)
        elif kind is dict:
            for key in item:
                if type(key) is not str:
                    return f"a key of type {type(key).__name__}"
            pending.extend(item.values())
        else:
            return f"a value of type {kind.__name__}"
    return None


def _check_record(topic: str, record: Mapping[Any, Any]) -> dict[str, Any]:
    required, optional = _COMPILED[topic]
    for key in record:
        if not isinstance(key, str):
            raise MalformedEvent(f"{topic}: record key of type {type(key).__name__} is not a string")
    for name, types, kind, numeric in required:
        value = record.get(name)
        if value is None:
            raise MalformedEvent(f"{topic}: record.{name} is missing")
        if not isinstance(value, types) or (numeric and value.__class__ is bool):
            raise _wrong_type(topic, name, kind, value)
    for name, types, kind, numeric in optional:
        value = record.get(name)
        if value is not None and (not isinstance(value, types) or (numeric and value.__class__ is bool)):
            raise _wrong_type(topic, name, kind, value)
    for key, value in record.items():
        if isinstance(value, int) and type(value) is not bool and not INT_MIN <= value <= INT_MAX:
            where = f"record.{key}" if key in _SCHEMA_KEYS[topic] else f"a record field ({len(key)}-char name)"
            raise MalformedEvent(f"{topic}: {where} is outside the signed 64-bit integer range")
        if topic in REFERENCE_TOPICS and type(value) not in _SCALARS:
            problem = _unstorable(value)
            if problem is not None:  # the router stores this record: refuse it here, not at its write
                where = f"record.{key}" if key in _SCHEMA_KEYS[topic] else f"a record field ({len(key)}-char name)"
                raise MalformedEvent(f"{topic}: {where} holds {problem}, which a stored record cannot")
    return dict(record)


_SCHEMA_KEYS = {topic: frozenset(required) | frozenset(optional)
                for topic, (required, optional) in RECORD_SCHEMAS.items()}


def _in_range(name: str, value: int | None, low: int) -> int | None:
    if value is not None and not low <= value <= INT_MAX:
        floor = "0" if low == 0 else "-2**63"
        raise MalformedEvent(f"payload.{name} must be between {floor} and 2**63-1")
    return value


def _text(name: str, value: str | None) -> str | None:
    if value is not None and len(value) > MAX_ID_CHARS:
        raise MalformedEvent(f"payload.{name} is {len(value)} characters, more than {MAX_ID_CHARS}")
    return value


def _optional(payload: Mapping[Any, Any], name: str, kind: str) -> Any:
    value = payload.get(name)
    if value is not None and not _type_ok(value, kind):
        raise MalformedEvent(f"payload.{name} must be {kind}, got {type(value).__name__}")
    return value


def parse_event(topic: str, payload: object, received_ms: int, depth: int = 0) -> Event:
    """Validate a decoded payload for ``topic``; raise ``MalformedEvent`` with the reason.

    Every event passes here on the ingress thread, so the usual shape (a dict whose values have
    exactly the expected types) is accepted by a few identity checks; anything else, valid or
    not, takes the full check, which also words the reason. The event gets its own copy of the
    record: the caller's payload stays the caller's.
    """
    return _parse(topic, payload, received_ms, depth, True)


def parse_decoded(topic: str, payload: object, received_ms: int) -> Event:
    """``parse_event`` of a payload fresh from the decoder, which nobody else holds.

    The event keeps the payload's record dict itself instead of a copy (the codec's path).
    """
    return _parse(topic, payload, received_ms, 0, False)


def _parse(topic: str, payload: object, received_ms: int, depth: int, copy: bool) -> Event:
    if type(payload) is dict and topic in _FAST:
        get = payload.get
        record = get("record")
        made = plain_event(topic, get("event"), dict(record) if copy and type(record) is dict else record,
                           get("source"), get("seq"), get("id"), get("ts"), received_ms, depth)
        if made is not None:
            return made
    return _parse_checked(topic, payload, received_ms, depth)


def plain_event(topic: str, event: Any, record: Any, source: Any, seq: Any, event_id: Any, ts: Any,
                received_ms: int, depth: int = 0) -> Event | None:
    """The ``Event`` of a payload's fields when they have the usual shape, else None.

    The fast path of ``parse_event``, for a decoder that has taken the payload's fields apart
    itself (``bus.codec``): a few identity checks accept what every publisher sends. None means
    "not the usual shape", never "malformed": the caller then hands the whole payload to
    ``parse_event``, which decides and words the reason. ``record`` becomes the event's own.
    """
    if ((type(event) is str and event in _RECORD_EVENT_SET if topic in _EVENT_REQUIRED
         else event is None or type(event) is str)
            and type(record) is dict
            and topic in _FAST
            and (event_id is None or type(event_id) is str and 0 < len(event_id) <= MAX_ID_CHARS)
            and (source is None or type(source) is str and len(source) <= MAX_ID_CHARS)
            # INT_MIN and INT_MAX as literals: constants, where the names would be global lookups.
            and (seq is None or type(seq) is int and 0 <= seq <= 0x7FFF_FFFF_FFFF_FFFF)
            and (ts is None or type(ts) is int and -0x8000_0000_0000_0000 <= ts <= 0x7FFF_FFFF_FFFF_FFFF)
            and _record_is_plain(topic, record)):
        return _new_event(topic, event, record, source, seq, event_id, ts, received_ms, depth)
    return None


class _EventTwin:
    """The slots of ``Event`` in a class that assigns them plainly; see ``_event_maker``."""

    __slots__ = ("topic", "event", "record", "source", "seq", "id", "ts_ms", "received_ms", "depth", "extra")

    def __init__(self, topic: str, event: str | None, record: dict[str, Any], source: str | None,
                 seq: int | None, event_id: str | None, ts_ms: int | None, received_ms: int, depth: int) -> None:
        self.topic = topic
        self.event = event
        self.record = record
        self.source = source
        self.seq = seq
        self.id = event_id
        self.ts_ms = ts_ms
        self.received_ms = received_ms
        self.depth = depth
        self.extra = {}


def _event_maker() -> Any:
    """``Event(...)`` of the nine leading fields at a third of the dataclass ``__init__``'s cost.

    A frozen dataclass sets each field through ``object.__setattr__``, a lookup and a call per
    field, about half of the ingress's work per event. The twin class has the same slot
    layout and assigns them as plain attributes; the object then becomes an ``Event`` (a
    ``__class__`` assignment CPython allows between identical layouts) and is frozen like any
    other. Should the fields or the layout ever differ, ``Event`` itself builds the events.
    """
    names = tuple(f.name for f in fields(Event))
    if names != _EventTwin.__slots__ or Event.__slots__ != names:
        return Event
    as_event = object.__setattr__

    def make(topic: str, event: str | None, record: dict[str, Any], source: str | None, seq: int | None,
             event_id: str | None, ts_ms: int | None, received_ms: int, depth: int) -> Event:
        made = _EventTwin(topic, event, record, source, seq, event_id, ts_ms, received_ms, depth)
        as_event(made, "__class__", Event)
        return made

    sample = ("trade.push", "EV_RECORD_ADD", {"order": 1}, "mt4", 2, "e", 3, 4, 1)
    try:
        made = make(*sample)
    except TypeError:  # an interpreter that refuses the class assignment
        return Event
    return make if type(made) is Event and made == Event(*sample) else Event


_new_event = _event_maker()


def _parse_checked(topic: str, payload: object, received_ms: int, depth: int) -> Event:
    if topic not in RECORD_SCHEMAS:
        raise MalformedEvent(f"unknown topic ({len(topic)} chars)")
    if not isinstance(payload, Mapping):
        raise MalformedEvent(f"{topic}: payload must be a map, got {type(payload).__name__}")
    event = _optional(payload, "event", _STR)
    if topic in _EVENT_REQUIRED and event is None:
        raise MalformedEvent(f"{topic}: payload.event is missing")
    if event is not None and topic in _EVENT_REQUIRED and event not in RECORD_EVENTS:
        raise MalformedEvent(f"{topic}: unknown event ({len(event)} chars)")
    record = payload.get("record")
    if not isinstance(record, Mapping):
        raise MalformedEvent(f"{topic}: payload.record must be a map")
    event_id = payload.get("id")
    if event_id is not None and not isinstance(event_id, (str, int)) or isinstance(event_id, bool):
        raise MalformedEvent("payload.id must be a string")
    if isinstance(event_id, int):
        if not INT_MIN <= event_id <= _ID_INT_MAX:
            raise MalformedEvent("payload.id is an integer outside the 64-bit range")
        event_id = str(event_id)
    return Event(
        topic=topic,
        event=event,
        record=_check_record(topic, record),
        source=_text("source", _optional(payload, "source", _STR)),
        seq=_in_range("seq", _optional(payload, "seq", _INT), 0),
        id=_text("id", event_id) or None,
        ts_ms=_in_range("ts", _optional(payload, "ts", _INT), INT_MIN),
        received_ms=received_ms,
        depth=depth,
    )
