"""HS_ADMIN rules: the permission matrix, HS_VLIST groups (nested, cyclic), governing records."""

from __future__ import annotations

from itertools import pairwise

import pytest

from plantwire.ids.authority import (
    MAX_GROUP_DEPTH,
    Operation,
    governing_record,
    holds,
    needed_for_removal,
    needed_for_values,
)
from plantwire.ids.model import AdminPermission, AdminRef, HandleValue, ValueRef
from plantwire.ids.names import match_key, parse_handle

P = AdminPermission
PREFIX_ADMIN = ValueRef("0.NA/88.101.5", 300)
OPERATOR = ValueRef("88.101.5/ops-team", 300)
STRANGER = ValueRef("88.101.6/someone", 300)


def admin(ref: ValueRef, permissions: AdminPermission, index: int = 100) -> HandleValue:
    return HandleValue(index, "HS_ADMIN", AdminRef(ref.handle, ref.index, permissions))


def vlist(index: int, *members: ValueRef) -> HandleValue:
    return HandleValue(index, "HS_VLIST", members)


class Directory:
    """Values of other handles, as the resolver or store would read them."""

    def __init__(self, **records: list[HandleValue]) -> None:
        self.records = {match_key(h.replace("__", "/")): v for h, v in records.items()}
        self.reads = 0

    def add(self, handle: str, *values: HandleValue) -> None:
        self.records[match_key(handle)] = list(values)

    def __call__(self, ref: ValueRef) -> HandleValue | None:
        self.reads += 1
        for value in self.records.get(match_key(ref.handle), []):
            if value.index == ref.index:
                return value
        return None


# every single permission, granted alone, allows exactly itself
@pytest.mark.parametrize("permission", list(P))
def test_each_permission_grants_only_itself(permission: AdminPermission) -> None:
    directory = Directory()
    values = [admin(OPERATOR, permission)]
    for other in P:
        assert holds(OPERATOR, other, values, directory) is (other == permission)
    assert not holds(STRANGER, permission, values, directory)


def test_permissions_combine_across_admin_values() -> None:
    values = [admin(OPERATOR, P.ADD_VALUE, 100), admin(OPERATOR, P.MODIFY_VALUE, 101)]
    assert holds(OPERATOR, P.ADD_VALUE | P.MODIFY_VALUE, values, Directory())
    assert not holds(OPERATOR, P.ADD_VALUE | P.REMOVE_VALUE, values, Directory())


def test_identity_matching_ignores_ascii_case_but_not_index() -> None:
    values = [admin(ValueRef("0.na/88.101.5", 300), P.all())]
    assert holds(PREFIX_ADMIN, P.ADD_HANDLE, values, Directory())
    assert not holds(ValueRef("0.NA/88.101.5", 301), P.ADD_HANDLE, values, Directory())


def test_no_admin_values_grant_nothing() -> None:
    assert not holds(PREFIX_ADMIN, P.ADD_VALUE, [HandleValue(1, "URL", b"x")], Directory())
    assert not holds(PREFIX_ADMIN, P(0), [admin(PREFIX_ADMIN, P.all())], Directory())


def test_group_membership_through_hs_vlist() -> None:
    group = ValueRef("0.NA/88.101.5", 200)
    directory = Directory()
    directory.add("0.NA/88.101.5", vlist(200, PREFIX_ADMIN, OPERATOR))
    values = [admin(group, P.all())]
    assert holds(OPERATOR, P.ADD_HANDLE, values, directory)
    assert holds(PREFIX_ADMIN, P.DELETE_HANDLE, values, directory)
    assert not holds(STRANGER, P.ADD_HANDLE, values, directory)


def test_nested_groups_and_cycles() -> None:
    outer, inner = ValueRef("88.101.5/groups", 1), ValueRef("88.101.5/groups", 2)
    directory = Directory()
    directory.add("88.101.5/groups", vlist(1, inner, outer), vlist(2, OPERATOR, outer))
    values = [admin(outer, P.MODIFY_VALUE)]
    assert holds(OPERATOR, P.MODIFY_VALUE, values, directory)
    assert not holds(STRANGER, P.MODIFY_VALUE, values, directory)  # terminates despite the cycle
    assert directory.reads < 10


def test_group_depth_is_bounded() -> None:
    directory = Directory()
    chain = [ValueRef(f"88.101.5/g{n}", 1) for n in range(MAX_GROUP_DEPTH + 2)]
    for here, there in pairwise(chain):
        directory.add(here.handle, vlist(1, there))
    directory.add(chain[-1].handle, vlist(1, OPERATOR))
    assert not holds(OPERATOR, P.ADD_VALUE, [admin(chain[0], P.ADD_VALUE)], directory)
    assert holds(OPERATOR, P.ADD_VALUE, [admin(chain[-3], P.ADD_VALUE)], directory)


def test_a_group_reference_that_is_not_a_vlist_is_no_group() -> None:
    directory = Directory()
    directory.add("88.101.5/x", HandleValue(1, "URL", b"https://x"))
    assert not holds(OPERATOR, P.ADD_VALUE, [admin(ValueRef("88.101.5/x", 1), P.all())], directory)


def test_governing_records() -> None:
    unit = parse_handle("88.101.5/SN-1")
    assert str(governing_record(Operation.CREATE_HANDLE, unit)) == "0.NA/88.101.5"
    assert str(governing_record(Operation.LIST_HANDLES, unit)) == "0.NA/88.101.5"
    assert str(governing_record(Operation.DELETE_HANDLE, unit)) == "88.101.5/SN-1"
    derived = parse_handle("0.NA/88.101.5")
    assert str(governing_record(Operation.CREATE_HANDLE, derived)) == "0.NA/88.101"
    assert str(governing_record(Operation.CREATE_DERIVED_PREFIX, derived)) == "0.NA/88.101"
    assert str(governing_record(Operation.CREATE_HANDLE, parse_handle("0.NA/88"))) == "0.NA/0.NA"


def test_permissions_a_write_needs() -> None:
    existing = [HandleValue(1, "URL", b"a"), admin(PREFIX_ADMIN, P.all(), 100)]
    assert needed_for_values(existing, [HandleValue(2, "EMAIL", b"e")]) == P.ADD_VALUE
    assert needed_for_values(existing, [HandleValue(1, "URL", b"b")]) == P.MODIFY_VALUE
    assert needed_for_values(existing, [admin(OPERATOR, P.ADD_VALUE, 101)]) == P.ADD_ADMIN
    assert needed_for_values(existing, [admin(OPERATOR, P.ADD_VALUE, 100)]) == P.MODIFY_ADMIN
    # turning an admin value into something else is still modifying an admin value
    assert needed_for_values(existing, [HandleValue(100, "URL", b"x")]) == P.MODIFY_ADMIN
    assert needed_for_removal(existing, [1]) == P.REMOVE_VALUE
    assert needed_for_removal(existing, [1, 100]) == P.REMOVE_VALUE | P.REMOVE_ADMIN
