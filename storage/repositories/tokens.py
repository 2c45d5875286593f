"""API tokens: only the SHA-256 of a token is stored; the token itself is shown once."""

from __future__ import annotations

import hashlib
import secrets

from brokerflow.storage.repositories.base import Repository, is_int

PREFIX = "bf_"


def token_hash(plain: str) -> str:
    return hashlib.sha256(plain.encode("utf-8")).hexdigest()


class TokenRepository(Repository):
    revision = 0
    """Goes up with every revocation made through this store: whoever caches a token's
    principal in this process (the API dispatcher) drops it as soon as the number changes."""

    def _record(self, row) -> dict:
        fields = ("id", "role", "brand", "name", "created_at")
        return {field: getattr(row, field) for field in fields}

    def create(self, role: str, brand: str | None = None, name: str | None = None) -> tuple[str, dict]:
        """A new token: ``(plain_token, record)``; the plain token cannot be recovered later."""
        plain = PREFIX + secrets.token_urlsafe(32)
        model = self._m.ApiToken
        with self._write():
            token_id = model.insert(
                token_hash=token_hash(plain), role=role, brand=brand, name=name,
                created_at=self._clock(), revoked=False,
            ).execute()
            return plain, self._record(model.get_by_id(token_id))

    def authenticate(self, plain: object) -> dict | None:
        """The record of a valid, unrevoked token, else None.

        The lookup is by hash, so how long it takes does not depend on how much of a guessed
        token matches a real one.
        """
        if not isinstance(plain, str) or not plain:
            return None
        try:
            digest = token_hash(plain)
        except UnicodeEncodeError:  # a lone surrogate: no stored token can be it
            return None
        model = self._m.ApiToken
        with self._read():
            row = model.get_or_none((model.token_hash == digest) & (model.revoked == False))  # noqa: E712
        return None if row is None else self._record(row)

    def list(self) -> list[dict]:
        """Every token's record by id, with ``revoked``; never a token's value (only its hash is stored)."""
        model = self._m.ApiToken
        with self._read():
            return [{**self._record(row), "revoked": bool(row.revoked)} for row in model.select().order_by(model.id)]

    def revoke(self, token_id: int) -> bool:
        """The token stops authenticating; False when there is no such live token."""
        model = self._m.ApiToken
        if not is_int(token_id):
            return False
        with self._write():
            revoked = bool(
                model.update(revoked=True).where((model.id == token_id) & (model.revoked == False)).execute()  # noqa: E712
            )
        self.revision += 1  # after the commit: a cache that reloads now finds the token revoked
        return revoked
