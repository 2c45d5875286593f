"""The server secret that signs sink URLs: ``--secret``, else one generated on first use and
kept in the database, so the engine and ``brokerflow sink sign`` agree without configuration."""

from __future__ import annotations

import secrets
from typing import Any

from brokerflow.settings import Settings

SECRET_KEY = "server_secret"


def server_secret(settings: Settings, meta_repo: Any) -> str:
    """``--secret`` when given, else the stored one (generated and stored now if there is none)."""
    if settings.secret:
        return str(settings.secret)
    return meta_repo.set_default(SECRET_KEY, secrets.token_urlsafe(32))
