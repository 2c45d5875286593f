"""Small named strings the engine keeps with its data (server secret, schema version)."""

from __future__ import annotations

from brokerflow.storage.repositories.base import Repository


class MetaRepository(Repository):
    def get(self, key: str, default: str | None = None) -> str | None:
        model = self._m.MetaEntry
        with self._read():
            row = model.get_or_none(model.key == key)
        return default if row is None else row.value

    def set(self, key: str, value: str) -> None:
        model = self._m.MetaEntry
        with self._write():
            model.insert(key=key, value=None if value is None else str(value)).on_conflict(
                conflict_target=[model.key], preserve=[model.value]
            ).execute()

    def set_default(self, key: str, value: str) -> str:
        """Store ``value`` unless ``key`` is set; returns the stored one (first writer wins).

        For values made once and shared by every engine on the database, like the server secret.
        """
        model = self._m.MetaEntry
        with self._write():
            model.insert(key=key, value=str(value)).on_conflict_ignore().execute()
            return model.get(model.key == key).value
