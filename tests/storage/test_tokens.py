"""API tokens: shown once, stored hashed, authenticated by hash, revocable."""

from __future__ import annotations

import hashlib

from tests.storage.conftest import T0_MS


def test_create_returns_the_plain_token_once_and_a_record(store):
    plain, record = store.tokens.create("SESSION_MANAGER", brand="alpha", name="desk")
    assert plain.startswith("bf_") and len(plain) > 40
    assert set(record) == {"id", "role", "brand", "name", "created_at"}
    assert (record["role"], record["brand"], record["name"]) == ("SESSION_MANAGER", "alpha", "desk")
    assert record["created_at"] > T0_MS


def test_only_the_sha256_of_the_token_is_stored(store):
    plain, _ = store.tokens.create("SESSION_ADMIN")
    model = store.tokens._m.ApiToken
    stored = [row.token_hash for row in model.select()]
    assert stored == [hashlib.sha256(plain.encode()).hexdigest()]


def test_authenticate_finds_the_record_of_a_valid_token(store):
    plain, record = store.tokens.create("SESSION_ADMIN", name="ops")
    store.tokens.create("SESSION_DEALER")
    assert store.tokens.authenticate(plain) == record


def test_unknown_empty_or_non_string_tokens_do_not_authenticate(store):
    plain, _ = store.tokens.create("SESSION_ADMIN")
    for candidate in ("bf_nope", plain[:-1], "", None, 42, plain.encode()):
        assert store.tokens.authenticate(candidate) is None


def test_each_token_is_different(store):
    tokens = {store.tokens.create("SESSION_ADMIN")[0] for _ in range(20)}
    assert len(tokens) == 20


def test_a_revoked_token_no_longer_authenticates(store):
    plain, record = store.tokens.create("SESSION_ADMIN")
    assert store.tokens.revoke(record["id"]) is True
    assert store.tokens.authenticate(plain) is None
    assert store.tokens.revoke(record["id"]) is False
    assert store.tokens.revoke(999) is False
