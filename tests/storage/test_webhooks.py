"""Pending webhook retries and dead letters, on each backend."""

from __future__ import annotations

import pytest

from brokerflow.errors import NotFound, ValidationFailed


def retry(run_id: int = 1, due_at: int = 1000, **changes):
    return {"run_id": run_id, "action_index": 0, "rule_id": 7, "brand": "alpha", "due_at": due_at,
            "delivery": {"url": "https://a.example/h", "headers": {"Authorization": "Bearer s"}},
            "attempts": [{"at": "2026-01-01T00:00:00.000Z", "http_status": 503}],
            "job": {"run_id": run_id, "context": {"brand": "alpha"}}, **changes}


def dead(run_id: int = 1, brand: str = "alpha", **changes):
    return {"run_id": run_id, "action_index": 0, "rule_id": 7, "brand": brand, "url": "https://a.example/h",
            "delivery": {"url": "https://a.example/h"}, "attempts": [{"at": "x", "error": "timeout"}],
            "last_error": "timeout", **changes}


def test_a_retry_is_due_once_its_time_comes_and_its_rows_round_trip(store):
    retry_id = store.webhooks.schedule(retry(due_at=1000))
    assert store.webhooks.due(999) == []
    [row] = store.webhooks.due(1000)
    assert row["id"] == retry_id and row["delivery"]["headers"] == {"Authorization": "Bearer s"}
    assert row["attempts"][0]["http_status"] == 503 and row["job"]["context"] == {"brand": "alpha"}
    assert store.webhooks.pending_count() == 1 and store.webhooks.next_due(0) == 1000


def test_scheduling_the_same_run_and_action_again_moves_the_one_row(store):
    first = store.webhooks.schedule(retry(due_at=1000))
    again = store.webhooks.schedule(retry(due_at=5000, attempts=[{"http_status": 503}, {"http_status": 502}]))
    assert first == again and store.webhooks.pending_count() == 1
    assert store.webhooks.due(4999) == [] and len(store.webhooks.due(5000)[0]["attempts"]) == 2


def test_a_claim_is_held_by_one_caller_until_it_lapses(store):
    retry_id = store.webhooks.schedule(retry(due_at=1000))
    assert store.webhooks.claim([retry_id], 1000, 2000) == [retry_id]
    assert store.webhooks.claim([retry_id], 1500, 2500) == []  # held
    assert store.webhooks.due(1500) == [] and store.webhooks.next_due(1500) == 2000
    assert store.webhooks.claim([retry_id], 2000, 3000) == [retry_id]  # lapsed: taken again
    store.webhooks.release([retry_id])
    assert [r["id"] for r in store.webhooks.due(2100)] == [retry_id]


def test_reschedule_and_finish(store):
    retry_id = store.webhooks.schedule(retry(due_at=1000))
    store.webhooks.claim([retry_id], 1000, 9000)
    store.webhooks.reschedule(retry_id, 3000, [{"http_status": 503}] * 2)
    [row] = store.webhooks.due(3000)
    assert row["claimed_until"] == 0 and len(row["attempts"]) == 2
    store.webhooks.finish(retry_id)
    assert store.webhooks.pending_count() == 0 and store.webhooks.next_due(0) is None


def test_bury_moves_a_retry_to_the_dead_letters_in_one_step(store):
    retry_id = store.webhooks.schedule(retry())
    dead_id = store.webhooks.bury(retry_id, dead())
    assert store.webhooks.pending_count() == 0 and store.webhooks.dead_letter_count() == 1
    letter = store.webhooks.dead_letter(dead_id)
    assert (letter["run_id"], letter["brand"], letter["last_error"], letter["url"]) == (
        1, "alpha", "timeout", "https://a.example/h")
    assert isinstance(letter["created_at"], int)


def test_dead_letters_list_newest_first_by_brand_and_limit(store):
    ids = [store.webhooks.bury(None, dead(run_id=n, brand=brand)) for n, brand in ((1, "alpha"), (2, "beta"),
                                                                                   (3, "alpha"))]
    assert [d["id"] for d in store.webhooks.dead_letters()] == ids[::-1]
    assert [d["run_id"] for d in store.webhooks.dead_letters(brand="alpha")] == [3, 1]
    assert [d["run_id"] for d in store.webhooks.dead_letters(limit=1)] == [3]
    assert store.webhooks.dead_letters(brands=set()) == []
    with pytest.raises(ValidationFailed):
        store.webhooks.dead_letters(limit=0)


def test_a_redelivery_is_claimed_once_and_recorded_or_discarded(store):
    dead_id = store.webhooks.bury(None, dead())
    assert store.webhooks.claim_dead_letter(dead_id, 1000, 5000)
    assert not store.webhooks.claim_dead_letter(dead_id, 1000, 5000)
    store.webhooks.record_redelivery(dead_id, [{"error": "timeout"}, {"http_status": 500}], "HTTP 500")
    letter = store.webhooks.dead_letter(dead_id)
    assert (len(letter["attempts"]), letter["last_error"]) == (2, "HTTP 500")
    assert store.webhooks.claim_dead_letter(dead_id, 1000, 5000)  # released by the record
    assert store.webhooks.discard(dead_id) and not store.webhooks.discard(dead_id)
    with pytest.raises(NotFound):
        store.webhooks.dead_letter(dead_id)


def test_a_run_written_again_replaces_its_row_and_a_stale_first_write_is_ignored(store):
    row = (5, 1, 1, "alpha", "deposit.created", "e1", "retrying", None,
           [{"type": "webhook.send", "status": "retrying"}], 100, 200, None, None, None)
    store.runs.write_rows([row])
    final = (*row[:6], "success", None, [{"type": "webhook.send", "status": "success"}], 100, 900, None, None, None)
    store.runs.write_rows([], replace=[row, final])  # two of one run in a batch: the later wins
    store.runs.write_rows([row])  # a first write arriving late changes nothing
    [run] = store.runs.list()
    assert (run["status"], run["actions"][0]["status"], run["finished_at"]) == ("success", "success", 900)
    assert store.runs.counts()["logged"] == 1


def test_a_retrying_run_is_not_counted_until_it_ends(store):
    store.runs.write_rows([(6, 1, 1, "alpha", "t", "e", "retrying", None, [], 1, 2, None, None, None)])
    assert store.runs.counts() == {"logged": 0, "success": 0, "failed": 0, "skipped": 0}
