"""``{{field}}`` placeholders in action texts (notification messages, webhook bodies, emails).

Only a double-braced name is a placeholder, so JSON bodies and single braces pass through
verbatim; a name the context does not hold stays as written, which makes a typo visible in the
delivered text instead of silently turning into an empty string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# A name starts with a letter, so context internals (``_missing``, ``_customer_id``) never render.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z][\w.:\-]*)\s*\}\}")


def format_value(value: Any) -> str:
    """How a context value reads inside a text: None empty, booleans lower-case, else ``str``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(text: str, ctx: Mapping[str, Any]) -> str:
    """Replace every ``{{name}}`` whose name is a key of ``ctx``; leave everything else verbatim."""

    def _one(match: re.Match[str]) -> str:
        name = match.group(1)
        return format_value(ctx[name]) if name in ctx else match.group(0)

    return PLACEHOLDER.sub(_one, text)


def placeholders(text: str) -> list[str]:
    """The placeholder names in ``text``, in order of first appearance, each once."""
    return list(dict.fromkeys(PLACEHOLDER.findall(text)))
