"""The in-memory replica of reference data: groups, accounts, customers, managers, rates, templates.

Every event needs its brand, account and customer, so they are dictionary lookups here rather
than queries. The router actor is the only writer; other actors read concurrently. That needs
no lock because a write is one atomic dict assignment of a fresh record (records are never
mutated in place) and readers copy a table (``list(d.values())``, atomic under the GIL)
before iterating it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from brokerflow.errors import ValidationFailed
from brokerflow.workflow.events import Event

Record = dict[str, Any]

# kind -> (attribute of ReferenceData, key field(s))
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "group": ("groups", ("group",)),
    "account": ("accounts", ("login",)),
    "customer": ("customers", ("id",)),
    "manager": ("managers", ("id",)),
    "rate": ("rates", ("currency",)),
    "kyc_step_template": ("templates", ("brand", "step_code")),
}
_TRADE_TOPICS = ("trade.push",)
# Kinds whose records the context builder flattens to ``<kind>.<field>`` keys (cached per record).
_FLAT_KINDS = {"account": ("accounts", "login", "account."), "customer": ("customers", "id", "customer.")}
# Trade links cached per login; past this many the cache starts over (bounds memory, amortized).
TRADE_CACHE_MAX = 50_000


class Links(NamedTuple):
    """What an event resolves to in the replica (each None when unknown)."""

    brand: str | None
    account: Record | None
    group: Record | None
    customer: Record | None


_NO_LINKS = Links(None, None, None, None)


class TradeLinks(NamedTuple):
    """A login's links, cached until the account, its group or its customer is replaced.

    ``group_key``/``customer_id`` are where ``group``/``customer`` were found, so one lookup
    each tells whether the entry still holds the stored records; ``currency`` is the group's
    upper-case currency when it is a usable code. ``contexts`` is the context builder's
    scratch space for this login (``workflow.context``): it lives and dies with the entry.
    """

    account: Record
    group_key: Any
    group: Record | None
    customer_id: Any
    customer: Record | None
    links: Links
    currency: str | None
    contexts: dict[Any, Record]


def _table_of(kind: str) -> tuple[str, tuple[str, ...]]:
    spec = KINDS.get(kind)
    if spec is None:
        raise ValidationFailed(f"unknown reference kind {kind!r}")
    return spec


def _normalize_key(kind: str, key: Any) -> Any:
    if kind == "rate" and isinstance(key, str):
        return key.upper()
    if kind == "kyc_step_template" and isinstance(key, list):
        return tuple(key)
    return key


def stored(table: Mapping[Any, Record], key: Any) -> Record | None:
    """The replica's record under a key a caller gave; an unhashable key (a list) names none."""
    try:
        return table.get(key)
    except TypeError:
        return None


class ReferenceData:
    """Reference records keyed as the bus and storage key them; see module docstring for threads."""

    def __init__(self) -> None:
        self.groups: dict[str, Record] = {}
        self.accounts: dict[int, Record] = {}
        self.customers: dict[int, Record] = {}
        self.managers: dict[int, Record] = {}
        self.rates: dict[str, Record] = {}
        self.templates: dict[tuple[str, str], Record] = {}
        # Derived views, never data: per kind (record, flat view); under "trade", TradeLinks by login.
        self._flat: dict[str, dict[Any, Any]] = {kind: {} for kind in (*_FLAT_KINDS, "trade")}

    # -- writes (router only) ----------------------------------------------------------------
    @staticmethod
    def key_fields(kind: str) -> tuple[str, ...]:
        """The fields that key a record of ``kind`` (``ValidationFailed`` for an unknown kind)."""
        return _table_of(kind)[1]

    @staticmethod
    def key_of(kind: str, record: Mapping[str, Any]) -> Any:
        """The replica key of ``record`` (``(brand, step_code)`` for templates, rates upper-case)."""
        _, fields = _table_of(kind)
        values = tuple(record.get(f) for f in fields)
        if any(v is None for v in values):
            raise ValidationFailed(f"{kind} record needs {' and '.join(fields)}",
                                   details=[{"path": f, "message": "required"} for f in fields
                                            if record.get(f) is None])
        return _normalize_key(kind, values if len(values) > 1 else values[0])

    def apply(self, kind: str, record: Mapping[str, Any]) -> Record:
        """Merge ``record`` into the stored one (absent fields are kept); return the merged record."""
        attr, _ = _table_of(kind)
        key = self.key_of(kind, record)
        table = getattr(self, attr)
        merged = {**table.get(key, {}), **record}
        if kind == "rate":
            merged["currency"] = key
        table[key] = merged
        return merged

    def remove(self, kind: str, key: Any) -> None:
        attr, _ = _table_of(kind)
        key = _normalize_key(kind, key)
        getattr(self, attr).pop(key, None)
        self._flat.get(kind, {}).pop(key, None)
        if kind == "account":
            self._flat["trade"].pop(key, None)

    def load(self, kind: str, records: Iterable[Mapping[str, Any]]) -> None:
        """Replace the whole table of ``kind`` (start-up from storage) in one assignment."""
        attr, _ = _table_of(kind)
        table: dict[Any, Record] = {}
        for record in records:
            key = self.key_of(kind, record)
            table[key] = {**record, "currency": key} if kind == "rate" else dict(record)
        setattr(self, attr, table)
        if kind in self._flat:
            self._flat[kind] = {}
        if kind in ("account", "group", "customer"):
            self._flat["trade"] = {}

    # -- event links -------------------------------------------------------------------------
    def resolve(self, event: Event) -> Links:
        """Brand, account, group and customer of an event, looked up once."""
        topic, record = event.topic, event.record
        if topic in _TRADE_TOPICS:
            trade = self.trade_links(record.get("login"))
            return _NO_LINKS if trade is None else trade.links
        if topic == "account.push":
            stored = self.accounts.get(record.get("login"))
            return self._account_links({**stored, **record} if stored else record)
        if topic == "customer.push":
            stored = self.customers.get(record.get("id"))
            customer = {**stored, **record} if stored else record
            brand = record.get("brand") or (stored.get("brand") if stored else None)
            return Links(brand, None, None, customer)
        if topic == "kyc.step.push":
            customer = self.customers.get(record.get("customer_id"))
            return Links(customer.get("brand") if customer else None, None, None, customer)
        return Links(None, None, None, None)

    def _account_links(self, account: Record | None) -> Links:
        if account is None:
            return _NO_LINKS
        group = self.groups.get(account.get("group"))
        customer_id = account.get("customer_id")
        customer = self.customers.get(customer_id) if customer_id is not None else None
        return Links(group.get("brand") if group else None, account, group, customer)

    def trade_links(self, login: Any) -> TradeLinks | None:
        """The links of a trade of ``login`` (None for an unknown account), cached per login.

        Every trade needs them, and the flattened views are most of a context's cost. An entry
        is reused only while the account, its group and its customer are still the stored
        record objects (records are replaced, never mutated), so any write, removal or reload
        is seen by the next trade; rates are not cached (``trade_amount_usd`` reads them).
        """
        account = self.accounts.get(login)
        if account is None:
            return None
        hit = self._flat["trade"].get(login)
        if (hit is not None and hit.account is account and self.groups.get(hit.group_key) is hit.group
                and self.customers.get(hit.customer_id) is hit.customer):
            return hit
        return self._trade_entry(login, account)

    def _trade_entry(self, login: Any, account: Record) -> TradeLinks:
        group_key, customer_id = account.get("group"), account.get("customer_id")
        group = self.groups.get(group_key)
        customer = self.customers.get(customer_id) if customer_id is not None else None
        currency = group.get("currency") if group else None
        entry = TradeLinks(account, group_key, group, customer_id, customer,
                           Links(group.get("brand") if group else None, account, group, customer),
                           currency.upper() if isinstance(currency, str) and currency else None, {})
        trades = self._flat["trade"]
        if len(trades) >= TRADE_CACHE_MAX:
            trades = self._flat["trade"] = {}
        trades[login] = entry
        return entry

    def brand_of(self, event: Event) -> str | None:
        """Trade/account: login -> account.group -> group.brand; customer/KYC: the customer's brand."""
        return self.resolve(event).brand

    def account_of(self, event: Event) -> Record | None:
        return self.resolve(event).account

    def customer_of(self, event: Event) -> Record | None:
        return self.resolve(event).customer

    def flat(self, kind: str, record: Mapping[str, Any]) -> Record:
        """``record`` as ``{"<kind>.<field>": value}`` for ``account``/``customer`` (read-only!).

        The view of a stored record is built once and reused until the record is replaced
        (records are never mutated in place, so identity tells whether the view is current);
        a record that is not the stored one (an account push merged with the replica) is
        flattened afresh. Cache writes from any thread are benign: each entry is one pair.
        """
        attr, key_field, prefix = _FLAT_KINDS[kind]
        key = record.get(key_field)
        cache = self._flat[kind]
        hit = cache.get(key)
        if hit is not None and hit[0] is record:
            return hit[1]
        view = {prefix + k: v for k, v in record.items()}
        if getattr(self, attr).get(key) is record:
            cache[key] = (record, view)
        return view

    # -- derived values ----------------------------------------------------------------------
    def usd_rate(self, currency: str | None) -> float | None:
        """USD per one unit of ``currency``: 1 for USD, None when no rate is known."""
        if not isinstance(currency, str) or not currency:
            return None
        code = currency.upper()
        if code == "USD":
            return 1
        usd = (self.rates.get(code) or {}).get("usd")
        if isinstance(usd, bool) or not isinstance(usd, (int, float)) or usd <= 0:
            return None
        return usd

    def trade_amount_usd(self, record: Mapping[str, Any], trade: TradeLinks | None) -> tuple[float | None, str | None]:
        """``amount_usd`` of a trade by its cached links: the common cases inline, the rest as there."""
        given = record.get("amount_usd")
        if given is not None:
            return given, None
        profit = record.get("profit")
        code = trade.currency if trade is not None else None
        if profit is not None and code is not None:
            if code == "USD":
                return abs(profit) * 1, None
            rate = self.rates.get(code)
            usd = rate.get("usd") if rate else None
            if (usd.__class__ is float or usd.__class__ is int) and usd > 0:
                return abs(profit) * usd, None
        return self.amount_usd(record, trade.group if trade is not None else None)

    def amount_usd(self, record: Mapping[str, Any],
                   group: Mapping[str, Any] | None) -> tuple[float | None, str | None]:
        """A balance operation or trade in USD (docs/runtime.md), or None and why not."""
        given = record.get("amount_usd")
        if given is not None:
            return given, None
        profit = record.get("profit")
        if profit is None:
            return None, "the record has no amount_usd and no profit"
        if group is None:
            return None, f"no trading group known for login {record.get('login')}"
        currency = group.get("currency")
        if not currency:
            return None, f"group {group.get('group')} has no currency"
        rate = self.usd_rate(currency)
        if rate is None:
            return None, f"no USD rate for {str(currency).upper()}"
        return abs(profit) * rate, None

    def enabled_managers(self, brand: str | None) -> list[Record]:
        """Managers that are enabled (or say nothing) and belong to ``brand`` or to no brand; by id."""
        found = [m for m in list(self.managers.values())
                 if m.get("enabled") in (True, None) and m.get("brand") in (brand, None, "")]
        return sorted(found, key=lambda m: m.get("id", 0))

    def active_templates(self, brand: str | None) -> list[Record]:
        """The brand's active KYC step templates (active unless it says false), by level then code."""
        found = [t for (b, _code), t in list(self.templates.items())
                 if b == brand and t.get("active", True) is not False]
        return sorted(found, key=lambda t: (t.get("level") or 0, str(t.get("step_code"))))
