"""The management API's access model: who may run a command, and which brand a token may touch.

A command names the roles that may run it (``None``: any valid token). A token created with
a brand is *brand-scoped*: it sees only that brand's data and touches only that brand's
records; an unscoped token sees every brand. The decisions per command are in ``docs/api.md``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from brokerflow.errors import AccessDenied, Unauthenticated
from brokerflow.workflow.catalog import ROLES

ADMIN = "SESSION_ADMIN"
READ_ROLES: frozenset[str] = frozenset(ROLES)  # the five session roles
ADMIN_ONLY: frozenset[str] = frozenset({ADMIN})
ANY_TOKEN = None  # roles value of commands any valid token may run (the Workflow Machine)
PRINCIPAL_TTL_S = 5.0  # how long a revocation made outside this process may go unnoticed
PRINCIPAL_CACHE_MAX = 1024  # tokens remembered at once (only valid ones get in)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's id, role, brand scope (``None``: all brands) and name."""

    token_id: Any
    role: str
    brand: str | None = None
    name: str | None = None

    @classmethod
    def from_token(cls, record: Mapping[str, Any]) -> Principal:
        return cls(record.get("id"), record["role"], record.get("brand") or None, record.get("name"))

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    @property
    def actor(self) -> str:
        """How stored changes record who made them."""
        return self.name or f"token:{self.token_id}"


class PrincipalCache:
    """The principals of tokens that authenticated in the last ``ttl_s`` seconds.

    Authenticating is a SHA-256 and a database read (~0.35 ms) on every request, on the API
    thread that every client shares; most requests come with a token seen a moment ago. Keys
    are the token's SHA-256 (the token itself is not kept); only valid tokens are remembered,
    so a flood of wrong tokens can neither fill the cache nor be answered from it, and at most
    ``max_entries`` are kept (the oldest go first).

    Revocation: a token revoked through this process's store drops out at once (the caller
    passes the store's revocation ``generation``; any change empties the answer); a token
    revoked elsewhere (another process on the same database) keeps working here for at most
    ``ttl_s``. Thread-safe: the ZeroMQ thread and the HTTP gateway's threads share one cache.
    """

    def __init__(self, ttl_s: float = PRINCIPAL_TTL_S, max_entries: int = PRINCIPAL_CACHE_MAX,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self.max_entries, self._clock = ttl_s, max(1, max_entries), clock
        self._entries: dict[bytes, tuple[Principal, float, Hashable]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def principal(self, token: str, generation: Hashable,
                  load: Callable[[str], Principal | None]) -> Principal | None:
        """The cached principal of ``token``, else ``load(token)`` (remembered when not None)."""
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry[1] > now and entry[2] == generation:
            return entry[0]
        found = load(token)  # outside the lock: other tokens are not held up by this read
        with self._lock:
            self._entries.pop(key, None)
            if found is not None:
                self._entries[key] = (found, now + self.ttl_s, generation)
                while len(self._entries) > self.max_entries:
                    del self._entries[next(iter(self._entries))]
        return found


class Guarded(Protocol):
    name: str
    roles: frozenset[str] | None
    auth: bool


def check(principal: Principal | None, command: Guarded) -> None:
    """Raise ``Unauthenticated`` or ``AccessDenied`` unless ``principal`` may run ``command``."""
    if not command.auth:
        return
    if principal is None:
        raise Unauthenticated(f"{command.name} needs a valid token")
    if command.roles is not ANY_TOKEN and principal.role not in command.roles:
        raise AccessDenied(f"role {principal.role} may not run {command.name}")


def require_admin(principal: Principal, what: str) -> None:
    if not principal.is_admin:
        raise AccessDenied(f"only {ADMIN} may {what}")


def can_see(principal: Principal, brand: str | None) -> bool:
    """Whether a record of ``brand`` is visible; brand-less records only to unscoped tokens."""
    return principal.brand is None or brand == principal.brand


def require_brand(principal: Principal, brand: str | None) -> None:
    """``AccessDenied`` when a brand-scoped token addresses another brand (or no brand)."""
    if not can_see(principal, brand):
        shown = "no brand" if brand is None else f"brand {brand!r}"
        raise AccessDenied(f"this token is scoped to brand {principal.brand!r} and may not touch {shown}")


def require_unscoped(principal: Principal, what: str) -> None:
    """For data shared by every brand (rates, flows): only unscoped tokens may change it."""
    if principal.brand is not None:
        raise AccessDenied(f"{what} is shared by all brands; a brand-scoped token may not change it")


def visible_brands(principal: Principal) -> frozenset[str] | None:
    """The brands a principal may read; ``None`` means all of them."""
    return None if principal.brand is None else frozenset({principal.brand})


def scope_filter(principal: Principal, requested: str | None) -> str | None:
    """The brand filter a list command runs with: the token's brand when scoped.

    Asking a scoped token's list for another brand is denied rather than answered empty, so
    a misconfigured client learns why it sees nothing.
    """
    if principal.brand is None:
        return requested
    if requested is not None:
        require_brand(principal, requested)
    return principal.brand


def filter_visible(principal: Principal, records: Iterable[Mapping[str, Any]],
                   brand_of: Callable[[Mapping[str, Any]], str | None] | None = None) -> list[Any]:
    """Records a principal may see; ``brand_of(record)`` defaults to ``record["brand"]``."""
    get = brand_of or (lambda r: r.get("brand"))
    return [r for r in records if can_see(principal, get(r))]


def _shown(brand: Any) -> str:
    """A brand for an error text: named when it is a short string (it may come from the caller)."""
    if brand is None:
        return "no brand"
    return f"brand {str(brand)[:64]!r}"


class ProcessScope:
    """What a brand-scoped principal may do to Workflow Machine processes (``None`` when unscoped).

    The process workers call ``allow`` under the pid's lock, on the state they are about to
    change and on the state a command leaves, because only they see a process's brand and
    customer as they are at that moment (a command of the same burst may have just set them).
    A process of another brand, or of none, is out of scope like any brand-less record; so is
    a customer not known to be of the principal's brand: state actions would act on it.
    """

    __slots__ = ("brand", "_customer_brand")

    def __init__(self, brand: str, customer_brand: Callable[[Any], str | None]) -> None:
        self.brand = brand
        self._customer_brand = customer_brand

    @classmethod
    def of(cls, principal: Principal | None,
           customer_brand: Callable[[Any], str | None]) -> ProcessScope | None:
        if principal is None or principal.brand is None:
            return None
        return cls(principal.brand, customer_brand)

    def allow(self, brand: Any, customer_id: Any = None) -> None:
        """``AccessDenied`` unless the process's ``brand`` and linked ``customer_id`` are in scope."""
        if brand != self.brand:
            raise AccessDenied(f"this token is scoped to brand {self.brand!r} and may not drive a process "
                               f"of {_shown(brand)}")
        if customer_id is not None and self._customer_brand(customer_id) != self.brand:
            raise AccessDenied(f"this token is scoped to brand {self.brand!r} and may not act on customer "
                               f"{str(customer_id)[:32]!r}: it is not a known customer of that brand")
