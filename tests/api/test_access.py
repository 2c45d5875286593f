"""Roles and brand scope."""

from __future__ import annotations

import pytest

from brokerflow.api.access import (
    ADMIN,
    ADMIN_ONLY,
    ANY_TOKEN,
    READ_ROLES,
    Principal,
    check,
    filter_visible,
    require_brand,
    require_unscoped,
    scope_filter,
    visible_brands,
)
from brokerflow.api.commands import Command
from brokerflow.errors import AccessDenied, Unauthenticated

READERS = sorted(READ_ROLES)


def _cmd(roles, auth=True):
    return Command("Cmd", lambda ctx, params: {}, roles, auth)


def test_the_five_seed_roles_read():
    assert READ_ROLES == {"SESSION_ADMIN", "SESSION_MANAGER", "SESSION_DEALER",
                          "SESSION_CRM_MANAGER", "SESSION_CRM_ADMIN"}


@pytest.mark.parametrize("role", READERS)
def test_every_role_passes_a_read_command_and_only_admin_an_admin_command(role):
    principal = Principal(1, role)
    check(principal, _cmd(READ_ROLES))
    check(principal, _cmd(ANY_TOKEN))
    if role == ADMIN:
        check(principal, _cmd(ADMIN_ONLY))
    else:
        with pytest.raises(AccessDenied):
            check(principal, _cmd(ADMIN_ONLY))


def test_a_missing_principal_is_unauthenticated_unless_the_command_needs_no_token():
    with pytest.raises(Unauthenticated):
        check(None, _cmd(ANY_TOKEN))
    check(None, _cmd(None, auth=False))


def test_a_brand_scoped_principal_touches_only_its_brand():
    scoped = Principal(1, ADMIN, "alpha")
    require_brand(scoped, "alpha")
    for other in ("beta", None):
        with pytest.raises(AccessDenied):
            require_brand(scoped, other)
    assert visible_brands(scoped) == {"alpha"}


def test_an_unscoped_principal_touches_every_brand():
    everyone = Principal(1, ADMIN)
    require_brand(everyone, "beta")
    require_brand(everyone, None)
    require_unscoped(everyone, "rates")
    assert visible_brands(everyone) is None


def test_shared_data_is_not_changed_by_a_scoped_token():
    with pytest.raises(AccessDenied):
        require_unscoped(Principal(1, ADMIN, "alpha"), "rates")


def test_list_filters_take_the_scoped_brand_and_deny_another():
    scoped = Principal(1, "SESSION_MANAGER", "alpha")
    assert scope_filter(scoped, None) == "alpha"
    assert scope_filter(scoped, "alpha") == "alpha"
    with pytest.raises(AccessDenied):
        scope_filter(scoped, "beta")
    assert scope_filter(Principal(1, "SESSION_MANAGER"), "beta") == "beta"


def test_filter_visible_keeps_only_the_scoped_brand():
    records = [{"brand": "alpha"}, {"brand": "beta"}, {"brand": None}]
    assert filter_visible(Principal(1, ADMIN, "alpha"), records) == [{"brand": "alpha"}]
    assert filter_visible(Principal(1, ADMIN), records) == records


def test_principal_from_a_token_record_treats_an_empty_brand_as_unscoped():
    principal = Principal.from_token({"id": 4, "role": ADMIN, "brand": "", "name": "ops"})
    assert principal == Principal(4, ADMIN, None, "ops")
    assert principal.actor == "ops"
    assert Principal(5, ADMIN).actor == "token:5"
