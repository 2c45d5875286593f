"""What the management API uses of storage, as Protocols: the methods, and nothing more.

The API sits beside storage, not above it (it never imports ``brokerflow.storage``): the engine
hands ``Services`` its ``storage.Store``, and these Protocols say which of its repositories'
methods the command handlers call. A repository method the API starts to use is added here,
which keeps that contract visible in one place. ``runs.list``'s ``limit`` default is storage's
``DEFAULT_LIMIT``: callers always pass it, so the value here only has to be a valid one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol


class RuleRecords(Protocol):
    def add(self, rule: dict, by: str | None = None) -> dict: ...

    def update(self, rule_id: int, version: int, rule: dict, by: str | None = None) -> dict: ...

    def archive(self, rule_id: int, by: str | None = None) -> dict: ...

    def delete(self, rule_id: int) -> None: ...

    def get(self, rule_id: int) -> dict: ...

    def list(self, brand: str | None = None, trigger: str | None = None, status: str | None = None,
             brands: Collection[str] | None = None) -> list[dict]: ...


class FlowRecords(Protocol):
    def list(self) -> list[dict]: ...

    def save(self, flow: dict, by: str | None = None) -> dict: ...

    def delete(self, name: str) -> None: ...


class RunRecords(Protocol):
    def counts(self) -> dict[str, int]: ...

    def list(self, rule_id: int | None = None, brand: str | None = None, status: str | None = None,
             limit: int = 100, before_id: int | None = None,
             brands: Collection[str] | None = None) -> list[dict]: ...


class ReferenceRecords(Protocol):
    def all(self, kind: str) -> list[dict]: ...

    def find(self, kind: str, filters: Mapping[str, object] | None = None) -> list[dict]: ...

    def get(self, kind: str, key: object) -> dict | None: ...

    def upsert(self, kind: str, record: dict) -> dict: ...


class KycRecords(Protocol):
    def get_profile(self, customer_id: int) -> dict | None: ...


class TokenRecords(Protocol):
    revision: int  # bumped by every change, so a principal cache knows to reload

    def authenticate(self, plain: object) -> dict | None: ...


class ApiStore(Protocol):
    """The repositories the command handlers reach through ``Services.store``."""

    @property
    def rules(self) -> RuleRecords: ...

    @property
    def flows(self) -> FlowRecords: ...

    @property
    def runs(self) -> RunRecords: ...

    @property
    def reference(self) -> ReferenceRecords: ...

    @property
    def kyc(self) -> KycRecords: ...

    @property
    def tokens(self) -> TokenRecords: ...


class HistoryPages(Protocol):
    """The event history on a connection of its own (``storage.repositories.history.HistoryReader``)."""

    def page(self, trigger: str, since_ts: int, until_ts: int, after: tuple[int, int] | None,
             size: int) -> list[tuple[int, int, bytes]]: ...

    def close(self) -> None: ...
