"""Customers' KYC profiles: required and current level, and the steps attached to them."""

from __future__ import annotations

from brokerflow.errors import ValidationFailed
from brokerflow.storage.repositories.base import Repository, invalid, is_int


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
        return self.get_profiles([customer_id]).get(customer_id)

    def get_profiles(self, customer_ids: list[int]) -> dict[int, dict]:
        """The stored profiles of ``customer_ids`` (absent ones left out), read in few queries.

        The KYC actor asks for every customer of a batch it has not cached yet at once.
        """
        wanted = list(dict.fromkeys(cid for cid in customer_ids if is_int(cid)))
        model = self._m.KycProfile
        found: dict[int, dict] = {}
        with self._read():
            for start in range(0, len(wanted), 500):
                query = model.select(model.customer_id, model.brand, model.required_level,
                                     model.current_level, model.steps).where(
                    model.customer_id.in_(wanted[start:start + 500]))
                for customer_id, brand, required, current, steps in query.tuples():
                    found[customer_id] = {"customer_id": customer_id, "brand": brand, "required_level": required,
                                          "current_level": current, "steps": steps}
        return found

    def save_profile(self, profile: dict) -> dict:
        """Insert or replace the customer's profile; returns it as stored."""
        return self.save_profiles([profile])[0]

    def save_profiles(self, profiles: list[dict]) -> list[dict]:
        """``save_profile`` for a batch in one transaction: all are stored, or none (in order)."""
        stored = [_stored(_check(profile)) for profile in profiles]
        latest = list({row["customer_id"]: row for row in stored}.values())  # one row per customer
        model = self._m.KycProfile
        with self._write():
            for start in range(0, len(latest), 200):  # multi-row statements, not one per profile
                model.insert_many(latest[start:start + 200]).on_conflict(
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
