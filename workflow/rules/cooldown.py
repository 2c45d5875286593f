"""Cooldowns: a rule runs at most once per ``seconds`` for each value of its ``key`` field.

``{"key": FIELD, "seconds": S}``: once the rule has run for a value of FIELD, its further matches
with that value within S seconds (of processing time, the engine's clock) do not run; they are
counted as suppressed. A suppressed match does not restart the cooldown. A match whose key field
has no value is limited like any other value ("no value" is one key). The decision is a pure
function of the last run's time and ``now``.

State is per (rule id, key value), kept in an LRU map of at most ``MAX_COOLDOWN_KEYS`` entries
per brand: past it, the key that ran longest ago is forgotten (it may then run again early, and
a warning says so when its cooldown was still going). The rule actor persists what ``decide``
returns so a restart keeps it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from brokerflow.workflow.catalog import EVENT_TRIGGERS, field_spec
from brokerflow.workflow.rules.windows import key_text

if TYPE_CHECKING:
    from brokerflow.workflow.rules.validation import Validation

log = logging.getLogger("brokerflow.rules")

COOLDOWN_S_MAX = 31 * 24 * 3600  # 31 days
MAX_COOLDOWN_KEYS = 100_000  # (rule, key value) entries a brand keeps in memory and storage


class CooldownSpec(NamedTuple):
    key: str  # the field whose value is limited
    window_ms: int


def cooldown_of(rule: Mapping[str, Any]) -> CooldownSpec | None:
    """A rule's cooldown as compiled; None for none (or one validation would refuse)."""
    spec = rule.get("cooldown")
    if not isinstance(spec, Mapping):
        return None
    key, seconds = spec.get("key"), spec.get("seconds")
    if not isinstance(key, str) or not isinstance(seconds, int) or not 0 < seconds <= COOLDOWN_S_MAX:
        return None
    return CooldownSpec(key, seconds * 1000)


def cooldown_allows(last_ms: int | None, now_ms: int, window_ms: int) -> bool:
    """May a match run at ``now_ms`` when the rule last ran for its key at ``last_ms``?"""
    return last_ms is None or not last_ms <= now_ms < last_ms + window_ms


class Cooldowns:
    """The last run time of each (rule id, key text), least recently run first."""

    def __init__(self, cap: int = MAX_COOLDOWN_KEYS) -> None:
        self.cap = cap
        self._last: OrderedDict[tuple[Any, str], int] = OrderedDict()
        self.evicted = 0

    def load(self, rows: Iterable[tuple[Any, str, int]]) -> None:
        """Stored ``(rule_id, key, fired_ms)`` rows, oldest first."""
        for rule_id, key, fired_ms in rows:
            self._set((rule_id, key), fired_ms, fired_ms)

    def replace(self, selected: Callable[[Any, str], bool], rows: Iterable[tuple[Any, str, int]]) -> int:
        """The ``(rule_id, key)`` entries ``selected`` says become what the stored ``rows`` (oldest
        first) hold for them: a partition gained from another process brings its cooldowns. Other
        entries are kept. Returns the rows loaded."""
        for entry in [entry for entry in self._last if selected(*entry)]:
            del self._last[entry]
        loaded = 0
        for rule_id, key, fired_ms in rows:
            if selected(rule_id, key):
                self._set((rule_id, key), fired_ms, fired_ms)
                loaded += 1
        return loaded

    def last(self, rule_id: Any, key: str) -> int | None:
        return self._last.get((rule_id, key))

    def decide(self, rule_id: Any, spec: CooldownSpec, ctx: Mapping[str, Any],
               now_ms: int) -> tuple[Any, str, int] | None:
        """The row to store when the match may run (its run starts the cooldown), None when suppressed."""
        key = key_text(ctx.get(spec.key))
        if not cooldown_allows(self._last.get((rule_id, key)), now_ms, spec.window_ms):
            return None
        self._set((rule_id, key), now_ms, now_ms)
        return rule_id, key, now_ms

    def _set(self, entry: tuple[Any, str], fired_ms: int, now_ms: int) -> None:
        last = self._last
        last[entry] = fired_ms
        last.move_to_end(entry)
        if len(last) > self.cap:
            (rule_id, _), oldest = last.popitem(last=False)
            self.evicted += 1
            if self.evicted == 1 or self.evicted % 10_000 == 0:
                log.warning("cooldowns: cap of %d keys reached; the key that ran longest ago (rule %s, at %d) "
                            "is forgotten and may run again early (%d forgotten so far)",
                            self.cap, rule_id, oldest, self.evicted)

    def __len__(self) -> int:
        return len(self._last)


def check_cooldown(cooldown: Any, trigger: str | None, v: Validation) -> None:
    """``cooldown``: absent, or ``{"key": FIELD of the trigger, "seconds": 1..COOLDOWN_S_MAX}``."""
    if cooldown is None:
        return
    if not isinstance(cooldown, Mapping):
        v.error("cooldown", 'must be a map {"key": FIELD, "seconds": S}')
        return
    if trigger is not None and trigger not in EVENT_TRIGGERS:
        v.error("cooldown", f"cooldowns limit runs of bus events: not for trigger {trigger!r} (event triggers only)")
    for extra in sorted(str(k) for k in cooldown if k not in ("key", "seconds")):
        v.error(f"cooldown.{extra}", "unknown key of a cooldown (key, seconds)")
    key = cooldown.get("key")
    spec = field_spec(key) if isinstance(key, str) else None
    if spec is None or spec.prefix:
        v.error("cooldown.key", f"must name a catalog field, got {key!r}")
    elif trigger is not None and trigger not in spec.triggers:
        v.error("cooldown.key", f"field {key!r} is not provided by trigger {trigger!r}; "
                                f"triggers that provide it: {', '.join(sorted(spec.triggers))}")
    seconds = cooldown.get("seconds")
    if not isinstance(seconds, int) or isinstance(seconds, bool) or not 1 <= seconds <= COOLDOWN_S_MAX:
        v.error("cooldown.seconds", f"must be an integer number of seconds from 1 to {COOLDOWN_S_MAX} (31 days), "
                                    f"got {seconds!r}")
