"""Does a real object provide what a consumer's ``typing.Protocol`` names? The gaps, in words.

Collaborators are typed by Protocols next to their consumers (actors and the API never import
storage), so nothing at import time ties a Protocol to the storage class that fills it. These
checks do: every member the Protocol names exists on the real object, and every method takes
the same parameters (names, kinds, which have defaults). A renamed repository method or a
dropped parameter then fails a test by name instead of at run time.
"""

from __future__ import annotations

import inspect
import typing


def _members(proto: type) -> list[str]:
    names = set(vars(proto).get("__annotations__", {}))
    names |= {name for name, value in vars(proto).items()
              if not name.startswith("_") and (callable(value) or isinstance(value, property))}
    return sorted(names)


def _params(function: typing.Callable) -> list[tuple[str, str, bool]]:
    return [(p.name, p.kind.name, p.default is not p.empty)
            for p in inspect.signature(function).parameters.values() if p.name != "self"]


def protocol_gaps(obj: object, proto: type, where: str = "") -> list[str]:
    """What ``obj`` lacks of ``proto`` (nested Protocols behind properties included); [] if nothing."""
    gaps = []
    for name in _members(proto):
        label = f"{where}{proto.__name__}.{name}"
        if not hasattr(obj, name):
            gaps.append(f"{label}: {type(obj).__name__} has no {name!r}")
            continue
        declared = vars(proto).get(name)
        if isinstance(declared, property):
            inner = typing.get_type_hints(declared.fget)["return"]
            gaps += protocol_gaps(getattr(obj, name), inner, f"{label} -> ")
        elif callable(declared) and _params(declared) != _params(getattr(obj, name)):
            gaps.append(f"{label}: {type(obj).__name__} takes {_params(getattr(obj, name))}, "
                        f"the Protocol says {_params(declared)}")
    return gaps
