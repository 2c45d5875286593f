"""Write-only webhook secrets and signing-secret names through the management API (PROTOCOL section 10)."""

from __future__ import annotations

from brokerflow.settings import WebhookSecrets
from tests.api.conftest import deposit_rule
from tests.api.test_flows import ONBOARDING

HOOK = {"type": "webhook.send", "params": {"url": "https://hooks.example/in", "secret": "crm",
                                           "headers": {"Authorization": "Bearer hidden-1", "X-Trace": "t"}}}


def configure(api, **secrets):
    api.services.settings = api.services.settings.with_(webhook_secrets=WebhookSecrets(secrets))


def test_a_flow_shows_its_webhook_secrets_masked_and_keeps_them_on_update(api):
    configure(api, crm="s3cret")
    flow = {**ONBOARDING, "states": {**ONBOARDING["states"], "docs": {**ONBOARDING["states"]["docs"],
                                                                      "actions": [HOOK]}}}
    added = api.body("MngAddFlow", {"flow": flow})["flow"]
    assert added["states"]["docs"]["actions"][0]["params"]["headers"] == {"Authorization": "***", "X-Trace": "t"}
    listed = api.body("MngGetFlows")["flows"][0]
    assert "hidden-1" not in str(listed)
    api.body("MngUpdateFlow", {"flow": {**listed, "title": "again"}})  # sends the masks back
    [stored] = api.services.store.flows.list()
    assert stored["states"]["docs"]["actions"][0]["params"]["headers"]["Authorization"] == "Bearer hidden-1"


def test_a_flow_naming_a_secret_that_is_not_configured_is_refused(api):
    flow = {**ONBOARDING, "states": {**ONBOARDING["states"], "docs": {**ONBOARDING["states"]["docs"],
                                                                      "actions": [HOOK]}}}
    error = api.error("MngAddFlow", {"flow": flow})
    assert error["code"] == "VALIDATION_FAILED"
    assert error["details"][0]["path"] == "states.docs.actions.0.params.secret"


def test_validate_add_and_update_check_the_secret_name_against_the_configured_ones(api):
    rule = deposit_rule(actions=[HOOK])
    assert api.body("MngValidateWorkflowRule", {"rule": rule})["errors"][0]["path"] == "actions[0].params.secret"
    assert api.error("MngAddWorkflowRule", {"rule": rule})["code"] == "VALIDATION_FAILED"
    configure(api, crm="s3cret")
    assert api.body("MngValidateWorkflowRule", {"rule": rule})["valid"] is True
    added = api.body("MngAddWorkflowRule", {"rule": rule})["rule"]
    configure(api, other="x")  # the secret went away: a later change must name one that exists
    error = api.error("MngUpdateWorkflowRule", {"id": added["id"], "version": 1, "rule": {"priority": 5}})
    assert error["code"] == "VALIDATION_FAILED"


def test_an_update_without_actions_keeps_the_secrets_and_archive_shows_them_masked(api):
    configure(api, crm="s3cret")
    added = api.body("MngAddWorkflowRule", {"rule": deposit_rule(actions=[HOOK])})["rule"]
    updated = api.body("MngUpdateWorkflowRule", {"id": added["id"], "version": 1, "rule": {"priority": 5}})["rule"]
    archived = api.body("MngArchiveWorkflowRule", {"id": added["id"]})["rule"]
    for shown in (added, updated, archived):
        assert shown["actions"][0]["params"]["headers"]["Authorization"] == "***"
    stored = api.services.store.rules.get(added["id"])
    assert stored["actions"][0]["params"]["headers"]["Authorization"] == "Bearer hidden-1"
