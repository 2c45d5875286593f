"""The webhook actor: garbage and a broken job are counted; the next request is sent."""

from dataclasses import replace

from brokerflow.actors.messages import JobBatch, WebhookDone
from brokerflow.actors.webhook import WebhookActor
from brokerflow.bus.webhook_sender import WebhookSender
from tests.actors.conftest import cell, logged, make_job
from tests.runtime.conftest import receiver  # noqa: F401 - the fixture


def test_garbage_and_a_broken_job_are_counted_and_the_next_request_sent(stats, pipeline, store, run_ids, receiver):  # noqa: F811
    actor = WebhookActor.start(stats, pipeline, WebhookSender(("127.0.0.0/8",), 4), 4)
    pipeline.register("webhook", actor)
    actor.tell("garbage")
    good = make_job(run_ids, [{"type": "webhook.send", "params": {"url": receiver.url("/ok"), "body": "{{brand}}"}}])
    actor.tell(WebhookDone(good, "nowhere.example", True, 200, None, 1.0))  # a result nobody waits for
    no_action = replace(make_job(run_ids, []), status="running")
    actor.tell(JobBatch((no_action, good)))
    [run] = logged(pipeline, store, 1)
    assert (run["id"], run["status"], run["actions"][0]["http_status"]) == (good.run_id, "success", 200)
    assert receiver.on("/ok")[0]["body"] == b"alpha"
    assert cell(stats, "webhook")["failed"] == 3
    assert not stats.busy()
