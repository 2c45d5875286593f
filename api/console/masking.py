"""Secrets in rules never reach a console page: header values and params that look like credentials.

The same names as PROTOCOL section 10's write-only rule secrets: headers ``Authorization``,
``Proxy-Authorization``, ``Cookie``, ``X-Api-Key`` and any header or param whose name
contains ``token``, ``secret`` or ``password``.
"""

from __future__ import annotations

from typing import Any

MASK = "***"
SECRET_HEADERS = frozenset(("authorization", "proxy-authorization", "cookie", "x-api-key"))
SECRET_PARTS = ("token", "secret", "password")


def secret_name(name: Any) -> bool:
    lowered = str(name).lower()
    return lowered in SECRET_HEADERS or any(part in lowered for part in SECRET_PARTS)


def masked(value: Any) -> Any:
    """A copy of ``value`` (rule, action, params) with every secret-looking entry's value masked."""
    if isinstance(value, dict):
        return {key: MASK if secret_name(key) and item not in (None, "") and not isinstance(item, (dict, list))
                else masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [masked(item) for item in value]
    return value
