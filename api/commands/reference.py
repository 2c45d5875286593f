"""Reference data and KYC step templates: ``MngUpsert<Kind>`` and ``MngGet<Kind>s``, and KYC profiles.

Record types are checked against the bus schemas of ``workflow.events`` (a record upserted here
is the same record a ``<kind>.push`` carries), with paths like ``record.login``.

Brand scope: a record's brand is its ``brand`` field, an account's is its group's. Rates and
brand-less managers serve every brand: all tokens read them, only unscoped admins write them.
A scoped admin may neither change a record of another brand nor move one into another brand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from brokerflow.api.access import ADMIN_ONLY, Principal, can_see, require_brand, require_unscoped, scope_filter
from brokerflow.api.commands._params import get
from brokerflow.api.commands._registry import CommandContext, command
from brokerflow.errors import NotFound, ValidationFailed
from brokerflow.workflow.events import RECORD_SCHEMAS, REFERENCE_TOPICS
from brokerflow.workflow.reference import KINDS as REFERENCE_KINDS

if TYPE_CHECKING:
    from brokerflow.api.store import ApiStore

# API name -> storage/replica kind.
KINDS = {
    "Group": "group", "Account": "account", "Customer": "customer", "Manager": "manager",
    "Rate": "rate", "KycStepTemplate": "kyc_step_template",
}
_TEMPLATE_FIELDS = {"brand": "str", "step_code": "str", "level": "int", "required": "bool",
                    "active": "bool", "title": "str"}
FIELD_TYPES: dict[str, dict[str, str]] = {
    **{kind: {**RECORD_SCHEMAS[topic][0], **RECORD_SCHEMAS[topic][1]}
       for topic, kind in REFERENCE_TOPICS.items()},
    "kyc_step_template": _TEMPLATE_FIELDS,
}
_TYPE_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "number": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
}


def key_fields(kind: str) -> tuple[str, ...]:
    return REFERENCE_KINDS[kind][1]


def check_record(kind: str, record: Mapping[Any, Any]) -> dict[str, Any]:
    """``record`` if its key is present and every known field has its type; else all problems."""
    problems = [{"path": f"record.{k!r}", "message": "field names must be strings"}
                for k in record if not isinstance(k, str)]
    problems += [{"path": f"record.{name}", "message": "is required"}
                 for name in key_fields(kind) if record.get(name) is None]
    for name, kind_of_value in FIELD_TYPES[kind].items():
        value = record.get(name)
        check, what = _TYPE_CHECKS[kind_of_value]
        if value is not None and not check(value):
            problems.append({"path": f"record.{name}",
                             "message": f"must be {what}, got {type(value).__name__}"})
    if problems:
        listed = "; ".join(f"{p['path']}: {p['message']}" for p in problems)
        raise ValidationFailed(f"invalid {kind} record: {listed}", details=problems)
    return dict(record)


class Scope:
    """The brand of reference records, as one command sees them (group brands looked up once)."""

    def __init__(self, store: ApiStore) -> None:
        self._store = store
        self._group_brands: dict[str, str | None] | None = None

    def _group_brand(self, group: Any) -> str | None:
        if self._group_brands is None:
            self._group_brands = {g["group"]: g.get("brand") for g in self._store.reference.all("group")}
        return self._group_brands.get(group) if isinstance(group, str) else None

    def brand_of(self, kind: str, record: Mapping[str, Any]) -> str | None:
        if kind == "account":
            return self._group_brand(record.get("group"))
        return record.get("brand") or None

    @staticmethod
    def shared(kind: str, record: Mapping[str, Any]) -> bool:
        """Records every brand uses: rates, and managers without a brand."""
        return kind == "rate" or (kind == "manager" and not record.get("brand"))

    def visible(self, principal: Principal, kind: str, record: Mapping[str, Any]) -> bool:
        return self.shared(kind, record) or can_see(principal, self.brand_of(kind, record))

    def require_writable(self, principal: Principal, kind: str, record: Mapping[str, Any]) -> None:
        if self.shared(kind, record):
            require_unscoped(principal, f"a {kind} record without a brand" if kind != "rate" else "a rate")
        else:
            require_brand(principal, self.brand_of(kind, record))


def _key(kind: str, record: Mapping[str, Any]) -> Any:
    values = tuple(record.get(name) for name in key_fields(kind))
    if any(v is None for v in values):
        return None
    return values if len(values) > 1 else values[0]


def require_record_scope(store: ApiStore, principal: Principal, kind: str, record: Mapping[str, Any]) -> None:
    """``AccessDenied`` unless ``principal`` may write ``record`` over what is stored under its key."""
    if principal.brand is None and kind != "rate":
        return
    scope = Scope(store)
    key = _key(kind, record)
    existing = store.reference.get(kind, key) if key is not None else None
    if existing:
        scope.require_writable(principal, kind, existing)
    scope.require_writable(principal, kind, {**(existing or {}), **record})


def upsert(ctx: CommandContext, params: dict[str, Any], kind: str) -> dict[str, Any]:
    record = check_record(kind, get(params, "record", dict, required=True))
    store = ctx.services.store
    require_record_scope(store, ctx.principal, kind, record)
    stored = store.reference.upsert(kind, record)
    ctx.services.reference_changed(kind, stored)
    return {"record": stored}


def find(ctx: CommandContext, params: dict[str, Any], kind: str) -> dict[str, Any]:
    principal = ctx.principal
    filters = dict(params)
    if principal.brand is not None and "brand" in FIELD_TYPES[kind] and kind != "manager":
        filters["brand"] = scope_filter(principal, filters.get("brand"))
    elif principal.brand is not None and filters.get("brand") is not None:
        require_brand(principal, filters["brand"])
    records = ctx.services.store.reference.find(kind, filters)
    if principal.brand is not None:
        scope = Scope(ctx.services.store)
        records = [r for r in records if scope.visible(principal, kind, r)]
    return {"records": records}


def _register(api_name: str, kind: str) -> None:
    def upsert_kind(ctx: CommandContext, params: dict[str, Any]) -> dict[str, Any]:
        return upsert(ctx, params, kind)

    def find_kind(ctx: CommandContext, params: dict[str, Any]) -> dict[str, Any]:
        return find(ctx, params, kind)

    command(f"MngUpsert{api_name}", roles=ADMIN_ONLY)(upsert_kind)
    command(f"MngGet{api_name}s")(find_kind)


for _api_name, _kind in KINDS.items():
    _register(_api_name, _kind)


@command("MngGetKycProfile")
def kyc_profile(ctx: CommandContext, params: dict[str, Any]) -> dict[str, Any]:
    customer_id = get(params, "customer_id", int, required=True)
    store = ctx.services.store
    profile = store.kyc.get_profile(customer_id)
    if profile is None:
        raise NotFound(f"customer {customer_id} has no KYC profile",
                       details=[{"path": "customer_id", "message": "no KYC profile"}])
    brand = profile.get("brand")
    if brand is None:
        customer = store.reference.get("customer", customer_id) or {}
        brand = customer.get("brand")
    require_brand(ctx.principal, brand)
    return {"profile": profile}
