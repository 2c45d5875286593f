"""Customers' KYC profiles: required and current level, and the steps attached to them."""

from __future__ import annotations

from brokerflow.errors import ValidationFailed
from storage.repositories.base import Repository, invalid, is_int


def _check(profile: object) -> dict:
    if not isinstance(profile, dict):
        raise invalid("profile", "not a map", "a profile must be a map")
    problems = []
    if not is_int(profile.get("customer_id")):
        problems.append({"path": "profile.customer_id", "message": "required integer"})
    for field in ("required_level", "current_level"):
        if profile.get(field) is not None and not is_int(profile[field]):
            problems.append({"path": f"profile.{field}", "message": "must be an integer"})
    if not isinstance(profile.get("steps", []), list):
        problems.append({"path": "profile.steps", "message": "must be a list"})
    if problems:
        raise ValidationFailed("invalid KYC profile", details=problems)
    return profile


class KycRepository(Repository):
    def get_profile(self, customer_id: int) -> dict | None:
        model = self._m.KycProfile
        with self._read():
            row = model.get_or_none(model.customer_id == customer_id) if is_int(customer_id) else None
        if row is None:
            return None
        return {
            "customer_id": row.customer_id, "brand": row.brand, "required_level": row.required_level,
            "current_level": row.current_level, "steps": row.steps,
        }

    def save_profile(self, profile: dict) -> dict:
        """Insert or replace the customer's profile; returns it as stored."""
        return self.save_profiles([profile])[0]

    def save_profiles(self, profiles: list[dict]) -> list[dict]:
        """``save_profile`` for a batch in one transaction: all are stored, or none (in order)."""
        stored = [_stored(_check(profile)) for profile in profiles]
        model = self._m.KycProfile
        with self._write():
            for row in stored:
                model.insert(**row).on_conflict(
                    conflict_target=[model.customer_id],
                    preserve=[model.brand, model.required_level, model.current_level, model.steps],
                ).execute()
        return stored


def _stored(profile: dict) -> dict:
    return {
        "customer_id": profile["customer_id"],
        "brand": profile.get("brand"),
        "required_level": profile.get("required_level") or 0,
        "current_level": profile.get("current_level") or 0,
        "steps": list(profile.get("steps") or []),
    }
