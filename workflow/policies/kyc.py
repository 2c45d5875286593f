"""KYC manager decisions (actions ``kyc.require_step`` / ``kyc.set_required_level``), as pure functions.

A profile is plain data: ``{"customer_id", "brand", "required_level", "current_level",
"steps": [{"step_code", "level", "status", "reason"}]}``. Every function returns the profile
and whether anything changed (so the caller stores and publishes only real changes): a new
profile when it changed, the input itself when not (most actions change nothing, and copying
every step for that was the actor's main cost); the input profile is never mutated. A step
attached by a rule starts as ``required``; the bus reports ``approved``/``rejected``.
``current_level`` is the highest level L such that every step with level <= L is approved (0 when
there is none). Levels start at 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from brokerflow.errors import ActionFailed

Profile = dict[str, Any]
REQUIRED, APPROVED, REJECTED = "required", "approved", "rejected"
FINAL_STATUSES = (APPROVED, REJECTED)


def new_profile(customer_id: int, brand: str | None) -> Profile:
    return {"customer_id": customer_id, "brand": brand, "required_level": 0, "current_level": 0,
            "steps": []}


def _level(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def current_level(steps: Iterable[Mapping[str, Any]]) -> int:
    """The highest level whose steps, and every lower level's, are all approved (steps without
    a level, reported by the bus before any rule required them, do not count)."""
    approved_by_level: dict[int, bool] = {}
    for step in steps:
        level = _level(step.get("level"))
        if level < 1:
            continue
        approved_by_level[level] = approved_by_level.get(level, True) and step.get("status") == APPROVED
    reached = 0
    for level in sorted(approved_by_level):
        if not approved_by_level[level]:
            break
        reached = level
    return reached


def _with_steps(profile: Mapping[str, Any], steps: list[dict[str, Any]], **changes: Any) -> Profile:
    return {**profile, **changes, "steps": steps, "current_level": current_level(steps)}


def _steps(profile: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(step) for step in profile.get("steps") or ()]


def _has_step(steps: Iterable[Mapping[str, Any]], step_code: str) -> bool:
    return any(step.get("step_code") == step_code for step in steps)


def _new_step(template: Mapping[str, Any], level: int | None, reason: str | None) -> dict[str, Any]:
    if level is None:
        level = template.get("level")
    return {"step_code": template.get("step_code"), "level": _level(level) or 1, "status": REQUIRED,
            "reason": reason}


def require_step(profile: Profile, template: Mapping[str, Any] | None, level: int | None,
                 reason: str | None, step_code: str | None = None) -> tuple[Profile, bool]:
    """Attach the template's step (once: an existing step with that code is reused as it is).

    ``level`` overrides the template's level. A missing or inactive template is an action
    failure; ``step_code`` only improves that message when the template is missing.
    """
    if template is None:
        raise ActionFailed(f"no KYC step template {step_code!r}" if step_code else "no KYC step template")
    code = template.get("step_code")
    if template.get("active", True) is False:
        raise ActionFailed(f"KYC step template {code!r} is not active")
    if _has_step(profile.get("steps") or (), code):
        return profile, False
    steps = _steps(profile)
    steps.append(_new_step(template, level, reason))
    return _with_steps(profile, steps), True


def _attachable(template: Mapping[str, Any], brand: str | None, level: int) -> bool:
    return (template.get("active", True) is not False and template.get("required", True) is not False
            and (brand is None or template.get("brand") in (None, brand))
            and _level(template.get("level")) <= level)


def raises_level(profile: Mapping[str, Any], level: Any) -> bool:
    """Would ``raise_level`` change the profile? (So a caller can skip gathering templates.)"""
    return _level(level) > _level(profile.get("required_level"))


def raise_level(profile: Profile, level: int, templates: Iterable[Mapping[str, Any]],
                reason: str | None) -> tuple[Profile, bool]:
    """Raise the required level (never lower it) and attach the brand's active required templates
    with ``template.level <= level`` that the profile does not hold yet."""
    level = _level(level)
    if not raises_level(profile, level):
        return profile, False
    steps = _steps(profile)
    brand = profile.get("brand")
    ordered = sorted(templates, key=lambda t: (_level(t.get("level")), str(t.get("step_code"))))
    for template in ordered:
        if _attachable(template, brand, level) and not _has_step(steps, template.get("step_code")):
            steps.append(_new_step(template, None, reason))
    return _with_steps(profile, steps, required_level=level), True


def apply_step_status(profile: Profile, step_code: str, level: int | None,
                      status: str) -> tuple[Profile, bool]:
    """Record a step's ``approved``/``rejected`` status from the bus (other statuses are ignored).

    A step the profile does not hold yet is added, so an approval reported before any rule
    required it still counts towards ``current_level``.
    """
    if status not in FINAL_STATUSES:
        return profile, False
    steps = _steps(profile)
    for step in steps:
        if step.get("step_code") == step_code:
            if step.get("status") == status:
                return profile, False
            step["status"] = status
            if step.get("level") is None and level is not None:
                step["level"] = level
            break
    else:
        steps.append({"step_code": step_code, "level": level, "status": status, "reason": None})
    updated = _with_steps(profile, steps)
    return updated, True
