"""Persistence behind one documented interface (``Store``), on SQLite or PostgreSQL.

See docs/internals.md, section ``storage``, for the contract.
"""

from brokerflow.storage.migrations import SCHEMA_VERSION
from brokerflow.storage.store import Store, open_store

__all__ = ["SCHEMA_VERSION", "Store", "open_store"]
