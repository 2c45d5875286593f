"""Which engine runs a ``matches`` pattern: Python's ``re`` backtracks, and it holds the GIL.

A pattern with nested quantifiers (``(a+)+$``) takes exponential time on a subject that almost
matches, and two unbounded quantifiers over the same characters (``.*a.*b``) take polynomial
time: with a 4096-character subject either would freeze every engine thread for seconds or
longer, and ``re`` cannot be interrupted. Such a pattern runs on RE2 instead (``google-re2``),
whose time is linear in the subject; a plain pattern keeps ``re`` (about 25 times cheaper per
search on a short value, and Python's own semantics, Unicode ``\\d`` included). A pattern that is
risky *and* uses what only a backtracking engine has (backreferences, lookaround, group
conditionals) is refused: when a rule is validated, and again when a stored rule is compiled.

Risk is read off the pattern's parse tree (``re._parser``), conservatively — a harmless pattern
taken for risky only runs on RE2:

* backreferences and group conditionals (``\\1``, ``(?(1)…)``);
* a quantifier that repeats more than once (``*``, ``+``, ``{2,}``…) over a part that holds a
  variable quantifier (``(a+)+``, ``(a?){3}``; a fixed count such as ``(\\d{3},)+`` is fine) or
  alternatives that can start with the same character (``(a|ab)+``);
* two wide quantifiers (unbounded, or more than ``WIDE`` choices) in one sequence without a
  required character between them that the first cannot match (``\\w+@\\w+`` is plain,
  ``.*a.*b`` and ``\\d+\\d*`` are risky).

Character sets are compared on probe characters (the pattern's own literals and range ends,
every character of short ranges, and samples of each class), folding case when any part of the
pattern ignores case. Patterns are at most ``PATTERN_MAX`` characters; the messages never quote
the pattern.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any

import re2

try:  # Python 3.11+; sre_parse before (it warns on import from 3.11 on)
    from re import _constants as C  # noqa: N812
    from re import _parser as sre_parser
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as C  # noqa: N812
    import sre_parse as sre_parser

PATTERN_MAX = 256  # characters of a pattern
SUBJECT_MAX = 4096  # characters of the actual value a pattern looks at (conditions._matches)
WIDE = 16  # a quantifier with more choices than this counts as unbounded

_REPEATS = frozenset({C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", C.MAX_REPEAT)})
_CHAR_OPS = frozenset({C.LITERAL, C.NOT_LITERAL, C.ANY, C.IN})
_ZERO_WIDTH = frozenset({C.AT, C.ASSERT, C.ASSERT_NOT})
_CATEGORY_RE = {
    C.CATEGORY_DIGIT: r"\d", C.CATEGORY_NOT_DIGIT: r"\D", C.CATEGORY_SPACE: r"\s",
    C.CATEGORY_NOT_SPACE: r"\S", C.CATEGORY_WORD: r"\w", C.CATEGORY_NOT_WORD: r"\W",
}
# Samples of each class, so sets built from classes and negations meet on a probe.
_SAMPLES = "aZz0 9_\t\n\r-.,@/:é\u00a0\u0663\u2028\u3000\u4e00ſK\u212a!~\x00\U0001f600"
_ANY = None  # a character set that may hold any character


Search = Callable[[str], bool]


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` may not be used by ``matches`` (None: it may); see the module docstring."""
    return _classify(pattern)[0]


def compile_search(pattern: str) -> Search | None:
    """Whether a value holds ``pattern`` within its first ``SUBJECT_MAX`` characters, on the
    engine the pattern is safe on; None for a pattern ``regex_problem`` refuses."""
    return _classify(pattern)[1]


def regex_engine(pattern: str) -> str | None:
    """``"re"``, ``"re2"``, or None for a refused pattern: which engine ``compile_search`` uses."""
    return _classify(pattern)[2]


@lru_cache(maxsize=1024)
def _classify(pattern: str) -> tuple[str | None, Search | None, str | None]:
    """``(problem, search, engine)``; cached, as the validator and the compiler both ask."""
    if len(pattern) > PATTERN_MAX:
        return f"must be at most {PATTERN_MAX} characters, got {len(pattern)}", None, None
    try:
        tree = sre_parser.parse(pattern)
        search = re.compile(pattern).search
    except re.error as exc:
        return f"is not a valid regular expression: {exc.msg} at position {exc.pos}", None, None
    except (OverflowError, RecursionError, ValueError) as exc:
        return f"is not a valid regular expression: {type(exc).__name__}", None, None
    fold = bool(tree.state.flags & C.SRE_FLAG_IGNORECASE) or _local_ignorecase(tree)
    risk = _Checker(fold).items(list(tree))
    if risk is None:
        return None, lambda value: search(value, 0, SUBJECT_MAX) is not None, "re"
    try:
        linear = re2.compile(pattern, options=_RE2_OPTIONS).search
    except re2.error:
        return (f"cannot run in bounded time: it {risk}, and RE2, the linear-time engine, cannot run "
                "it (backreferences, lookaround and group conditionals need backtracking)"), None, None
    # RE2's endpos is not where ``$`` holds, as it is for ``re``: search the cut value instead
    return None, lambda value: linear(value[:SUBJECT_MAX]) is not None, "re2"


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # a refusal is ours to report, not RE2's to print on stderr
    return options


_RE2_OPTIONS = _re2_options()


def _local_ignorecase(items: Iterable[tuple[Any, Any]]) -> bool:
    for op, av in items:
        if op is C.SUBPATTERN and av[1] & C.SRE_FLAG_IGNORECASE:
            return True
        if any(_local_ignorecase(sub) for sub in _children(op, av)):
            return True
    return False


def _children(op: Any, av: Any) -> list[Sequence[tuple[Any, Any]]]:
    """The sub-sequences of one parse node."""
    if op in _REPEATS:
        return [av[2]]
    if op is C.SUBPATTERN:
        return [av[3]]
    if op is C.BRANCH:
        return list(av[1])
    if op in (C.ASSERT, C.ASSERT_NOT):
        return [av[1]]
    if op is getattr(C, "ATOMIC_GROUP", None):
        return [av]
    if op is C.GROUPREF_EXISTS:
        return [part for part in av[1:] if part is not None]
    return []


@lru_cache(maxsize=16)
def _category(code: Any) -> re.Pattern[str]:
    return re.compile(_CATEGORY_RE[code])


def _in_item(op: Any, av: Any, ch: str) -> bool:
    """Whether one character item (literal, class, ``.``) matches ``ch``, exactly."""
    code = ord(ch)
    if op is C.LITERAL:
        return code == av
    if op is C.NOT_LITERAL:
        return code != av
    if op is C.ANY:
        return True  # ``.`` with or without DOTALL: counting the newline in is the safe side
    negate, hit = False, False
    for sub_op, sub_av in av:
        if sub_op is C.NEGATE:
            negate = True
        elif sub_op is C.LITERAL:
            hit = hit or code == sub_av
        elif sub_op is C.RANGE:
            hit = hit or sub_av[0] <= code <= sub_av[1]
        elif sub_op is C.CATEGORY:
            hit = hit or (sub_av in _CATEGORY_RE and _category(sub_av).fullmatch(ch) is not None)
        else:
            return True  # a kind this check does not know: assume it matches
    return hit != negate


def _probes_of(op: Any, av: Any) -> set[str]:
    if op in (C.LITERAL, C.NOT_LITERAL):
        return {chr(av)}
    out: set[str] = set()
    if op is C.IN:
        for sub_op, sub_av in av:
            if sub_op is C.LITERAL:
                out.add(chr(sub_av))
            elif sub_op is C.RANGE:
                low, high = sub_av
                step = 1 if high - low <= 2048 else (high - low) // 512
                out.update(chr(c) for c in range(low, high + 1, step))
                out.add(chr(high))
    return out


class _Checker:
    """One pattern's walk; ``fold`` compares characters ignoring case."""

    def __init__(self, fold: bool) -> None:
        self.fold = fold

    # -- character sets: None (any character) or a tuple of character items ------------------
    def _member(self, chars: tuple[tuple[Any, Any], ...], ch: str) -> bool:
        variants = {ch, ch.lower(), ch.upper(), ch.swapcase()} if self.fold else {ch}
        return any(_in_item(op, av, v) for op, av in chars for v in variants)

    def overlap(self, a: tuple | None, b: tuple | None) -> bool:
        if a is _ANY or b is _ANY:
            return True
        probes = set(_SAMPLES)
        for op, av in (*a, *b):
            probes |= _probes_of(op, av)
        if self.fold:
            probes |= {v for p in list(probes) for v in (p.lower(), p.upper())}
        return any(self._member(a, p) and self._member(b, p) for p in probes)

    def chars(self, items: Sequence[tuple[Any, Any]]) -> tuple | None:
        """Every character a sequence can consume (None: any, or unknown)."""
        out: list[tuple[Any, Any]] = []
        for op, av in items:
            if op in _CHAR_OPS:
                out.append((op, av))
            elif op in _ZERO_WIDTH:
                continue
            elif op in _REPEATS or op is C.SUBPATTERN:
                inner = self.chars(av[2] if op in _REPEATS else av[3])
                if inner is _ANY:
                    return _ANY
                out.extend(inner)
            else:
                return _ANY
        return tuple(out)

    def first(self, items: Sequence[tuple[Any, Any]]) -> tuple | None:
        """The characters a sequence can start with (None: any, or unknown)."""
        out: list[tuple[Any, Any]] = []
        for op, av in items:
            if op in _CHAR_OPS:
                return (*out, (op, av))
            if op is C.AT:
                continue
            if op in _REPEATS:
                inner = self.first(av[2])
                if inner is _ANY:
                    return _ANY
                out.extend(inner)
                if av[0] >= 1:
                    return tuple(out)
                continue
            if op is C.SUBPATTERN:
                return self._first_then(out, self.first(av[3]))
            return _ANY
        return _ANY  # the sequence can match nothing at all: what follows it decides

    @staticmethod
    def _first_then(out: list, inner: tuple | None) -> tuple | None:
        return _ANY if inner is _ANY else (*out, *inner)

    # -- the rules ----------------------------------------------------------------------------
    def items(self, items: Sequence[tuple[Any, Any]]) -> str | None:
        for op, av in items:
            if op in (C.GROUPREF, C.GROUPREF_EXISTS):
                return "uses backreferences or group conditionals"
            if op in _REPEATS and av[1] > 1:
                problem = self.repeated(av[2])
                if problem:
                    return problem
            for sub in _children(op, av):
                problem = self.items(sub)
                if problem:
                    return problem
        return self.sequence(items)

    def repeated(self, body: Sequence[tuple[Any, Any]]) -> str | None:
        """What a part repeated more than once may not hold."""
        for op, av in body:
            if op in _REPEATS and av[0] != av[1]:
                return "repeats a part that holds a quantifier, as in (a+)+ (exponential time on re)"
            if op is C.BRANCH:
                starts = [self.first(branch) for branch in av[1]]
                for i, start in enumerate(starts):
                    if any(self.overlap(start, other) for other in starts[i + 1:]):
                        return ("repeats alternatives that can start with the same character, "
                                "as in (a|ab)+ (exponential time on re)")
            for sub in _children(op, av):
                problem = self.repeated(sub)
                if problem:
                    return problem
        return None

    def sequence(self, items: Sequence[tuple[Any, Any]]) -> str | None:
        """Two wide quantifiers without a required character between them that splits them."""
        flat = list(_flatten(items))
        for i, (op, av) in enumerate(flat):
            if not _wide(op, av):
                continue
            consumed = self.chars(av[2])
            for later_op, later_av in flat[i + 1:]:
                if _wide(later_op, later_av) and self.overlap(consumed, self.first(later_av[2])):
                    return ("has two unbounded quantifiers that can match the same characters without "
                            "a character between them that only the second side matches, as in "
                            ".*a.*b (polynomial time on re)")
                if self._pins(later_op, later_av, consumed):
                    break
        return None

    def _pins(self, op: Any, av: Any, consumed: tuple | None) -> bool:
        """A required item the first quantifier cannot consume: where that quantifier must end."""
        if op in _CHAR_OPS:
            return not self.overlap(consumed, ((op, av),))
        if op in _REPEATS and av[0] >= 1:
            return not self.overlap(consumed, self.first(av[2]))
        return False


def _wide(op: Any, av: Any) -> bool:
    return op in _REPEATS and (av[1] == C.MAXREPEAT or av[1] - av[0] > WIDE)


def _flatten(items: Sequence[tuple[Any, Any]]) -> Iterable[tuple[Any, Any]]:
    """A sequence with its plain groups opened, so ``(.*)a(.*)b`` reads as ``.*a.*b``."""
    for op, av in items:
        if op is C.SUBPATTERN:
            yield from _flatten(av[3])
        elif not _wide(op, av) and any(_holds_wide(sub) for sub in _children(op, av)):
            yield _WIDE_ANY  # an alternative, lookaround or ``?`` holding a wide quantifier
        else:
            yield op, av


def _holds_wide(items: Sequence[tuple[Any, Any]]) -> bool:
    return any(_wide(op, av) or any(_holds_wide(sub) for sub in _children(op, av)) for op, av in items)


_WIDE_ANY = (C.MAX_REPEAT, (0, C.MAXREPEAT, [(C.ANY, None)]))
