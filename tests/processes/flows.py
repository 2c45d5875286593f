"""The flows the process tests drive: a three-level onboarding and a self-looping counter.

``onboarding`` -> ``kyc_check`` (subflow) -> ``doc_review`` (a subflow inside the subflow);
``bank`` is an external state. Add them child first: a subflow must exist when its parent is saved.
"""

from __future__ import annotations

import copy
from typing import Any

MANAGER_ID = 7
BANK_URL = "https://bank.example/connect"

HINTS = [{"elementCode": "email", "hintTexts": [{"text": "Your e-mail", "hintTextType": "FIELD"}]}]

DOC_REVIEW = {
    "name": "doc_review", "title": "Document review", "initial": "look",
    "states": {
        "look": {"title": "Look at the documents", "on": {"accept": "ok", "refuse": "bad"}},
        "ok": {"final": True},
        "bad": {"final": True},
    },
}

KYC_CHECK = {
    "name": "kyc_check", "title": "KYC check", "initial": "upload",
    "states": {
        "upload": {"title": "Upload", "boStepCode": "UP", "on": {"uploaded": "review", "give_up": "rejected"}},
        "review": {"subflow": "doc_review", "on": {"ok": "approved", "bad": "upload", "exit": "upload"}},
        "approved": {"final": True},
        "rejected": {"final": True},
    },
}

ONBOARDING = {
    "name": "onboarding", "title": "Onboarding", "initial": "personal",
    "states": {
        "personal": {"title": "Personal data", "boStepCode": "PD", "hints": HINTS, "on": {"next": "docs"}},
        "docs": {"title": "Documents", "on": {"submit": "check", "back": "personal"},
                 "actions": [{"type": "notify.manager",
                              "params": {"manager_id": MANAGER_ID,
                                         "message": "{{input.email}} reached {{process.state}}"}}]},
        "check": {"subflow": "kyc_check", "on": {"approved": "bank", "rejected": "docs", "exit": "docs"}},
        "bank": {"title": "Bank", "external": {"url": BANK_URL}, "on": {"return": "done"}},
        "done": {"final": True},
    },
}

COUNTER = {
    "name": "counter", "initial": "counting",
    "states": {"counting": {"on": {"step": "counting", "stop": "stopped"}}, "stopped": {"final": True}},
}

ALL = (DOC_REVIEW, KYC_CHECK, ONBOARDING, COUNTER)


def flow(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with top-level ``changes``."""
    return {**copy.deepcopy(base), **changes}
