"""``{{field}}`` placeholders in action texts (notification messages, webhook bodies, emails).

Only a double-braced name is a placeholder, so JSON bodies and single braces pass through
verbatim; a name the context does not hold stays as written, which makes a typo visible in the
delivered text instead of silently turning into an empty string.

A rule's texts are few and rendered once per run, so each text is parsed once (bounded cache)
and rendering is a walk over its pieces: no regular expression per call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

# A name starts with a letter, so context internals (``_missing``, ``_customer_id``) never render.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z][\w.:\-]*)\s*\}\}")
# Distinct texts kept parsed; rules hold far fewer, and a miss only costs one parse.
COMPILED_TEXTS = 4096
_ABSENT = object()

# (the text before the first placeholder, then per placeholder: (name, as written, text after it))
Compiled = tuple[str, tuple[tuple[str, str, str], ...]]


def format_value(value: Any) -> str:
    """How a context value reads inside a text: None empty, booleans lower-case, else ``str``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@lru_cache(maxsize=COMPILED_TEXTS)
def compile_text(text: str) -> Compiled:
    """``text`` cut at its placeholders; a text without any has no steps."""
    matches = list(PLACEHOLDER.finditer(text))
    if not matches:
        return text, ()
    ends = [m.start() for m in matches[1:]] + [len(text)]
    steps = tuple((m.group(1), m.group(0), text[m.end():end]) for m, end in zip(matches, ends, strict=True))
    return text[:matches[0].start()], steps


def render(text: str, ctx: Mapping[str, Any]) -> str:
    """Replace every ``{{name}}`` whose name is a key of ``ctx``; leave everything else verbatim."""
    head, steps = compile_text(text)
    if not steps:
        return text
    pieces = [head]
    get = ctx.get
    for name, written, tail in steps:
        value = get(name, _ABSENT)
        if value is _ABSENT:
            pieces.append(written)
        else:
            pieces.append(value if type(value) is str else format_value(value))
        pieces.append(tail)
    return "".join(pieces)


def placeholders(text: str) -> list[str]:
    """The placeholder names in ``text``, in order of first appearance, each once."""
    return list(dict.fromkeys(name for name, _, _ in compile_text(text)[1]))
