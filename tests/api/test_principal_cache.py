"""The principal cache: valid tokens are remembered for a TTL, bounded, and revocation still counts."""

from __future__ import annotations

from brokerflow.api.access import Principal, PrincipalCache
from brokerflow.api.dispatcher import Dispatcher


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Loader:
    """Counts database reads; ``known`` maps tokens to principals."""

    def __init__(self, **known: Principal) -> None:
        self.known, self.calls = known, 0

    def __call__(self, token: str) -> Principal | None:
        self.calls += 1
        return self.known.get(token)


ALICE = Principal(1, "SESSION_ADMIN", None, "alice")


def test_a_valid_token_is_read_once_within_the_ttl():
    clock, load = Clock(), Loader(alice=ALICE)
    cache = PrincipalCache(ttl_s=5.0, clock=clock)
    assert [cache.principal("alice", 0, load) for _ in range(3)] == [ALICE] * 3
    assert load.calls == 1


def test_after_the_ttl_the_token_is_read_again():
    clock, load = Clock(), Loader(alice=ALICE)
    cache = PrincipalCache(ttl_s=5.0, clock=clock)
    cache.principal("alice", 0, load)
    clock.now += 4.9
    cache.principal("alice", 0, load)
    clock.now += 0.2
    cache.principal("alice", 0, load)
    assert load.calls == 2


def test_a_new_generation_forgets_what_was_remembered():
    load = Loader(alice=ALICE)
    cache = PrincipalCache(clock=Clock())
    cache.principal("alice", 0, load)
    del load.known["alice"]
    assert cache.principal("alice", 1, load) is None
    assert len(cache) == 0 and load.calls == 2


def test_unknown_tokens_are_never_remembered():
    load = Loader()
    cache = PrincipalCache(clock=Clock())
    assert cache.principal("nobody", 0, load) is None
    assert cache.principal("nobody", 0, load) is None
    assert load.calls == 2 and len(cache) == 0


def test_the_cache_keeps_at_most_max_entries_dropping_the_oldest():
    load = Loader(**{f"t{i}": Principal(i, "SESSION_DEALER") for i in range(5)})
    cache = PrincipalCache(max_entries=3, clock=Clock())
    for i in range(5):
        cache.principal(f"t{i}", 0, load)
    assert len(cache) == 3
    cache.principal("t4", 0, load)
    assert load.calls == 5
    cache.principal("t0", 0, load)
    assert load.calls == 6


def test_the_dispatcher_reads_a_token_once_per_ttl(services, store, monkeypatch):
    plain, _ = store.tokens.create("SESSION_ADMIN")
    reads = []
    original = store.tokens.authenticate
    monkeypatch.setattr(store.tokens, "authenticate", lambda token: reads.append(token) or original(token))
    dispatcher = Dispatcher(services)
    for _ in range(3):
        assert dispatcher.handle({"cmd": "MngGetStats", "token": plain})["success"] is True
    assert len(reads) == 1


def test_a_revocation_through_the_store_counts_at_once(services, store):
    plain, record = store.tokens.create("SESSION_ADMIN")
    dispatcher = Dispatcher(services)
    assert dispatcher.handle({"cmd": "MngGetStats", "token": plain})["success"] is True
    store.tokens.revoke(record["id"])
    assert dispatcher.handle({"cmd": "MngGetStats", "token": plain})["error"]["code"] == "UNAUTHENTICATED"


def test_a_revocation_by_another_process_counts_within_the_ttl(services, store):
    plain, record = store.tokens.create("SESSION_ADMIN")
    clock = Clock()
    dispatcher = Dispatcher(services, principals=PrincipalCache(ttl_s=5.0, clock=clock))
    assert dispatcher.authenticate(plain) is not None
    model = store.tokens._m.ApiToken  # what another process's revoke leaves: the row, not our counter
    model.update(revoked=True).where(model.id == record["id"]).execute()
    assert dispatcher.authenticate(plain) is not None
    clock.now += 5.0
    assert dispatcher.authenticate(plain) is None
