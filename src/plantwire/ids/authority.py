"""Who may change what: the HS_ADMIN rules of the Handle System (RFC 3650 §3.5, RFC 3651 §3.2),
as pure functions over values. No I/O: the caller passes a way to read the values of other
handles (for HS_VLIST groups), which the REST layer backs with the store or the resolver.

An HS_ADMIN value grants an identity ``index:handle`` a set of permissions on the handle that
holds it. The identity may be a person's key (an HS_PUBKEY or HS_SECKEY value) or a group: an
HS_VLIST value whose entries are identities or further groups. Creating a handle, or a derived
prefix, or listing a prefix's handles is governed by the HS_ADMIN values of the prefix's own
record ``0.NA/<prefix>``; every other change by the HS_ADMIN values of the handle itself."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence

from plantwire.ids.model import HS_ADMIN, HS_VLIST, AdminPermission, AdminRef, HandleValue, ValueRef
from plantwire.ids.names import Handle, match_key, prefix_record

__all__ = [
    "MAX_GROUP_DEPTH",
    "Operation",
    "ValueReader",
    "governing_record",
    "holds",
    "needed_for_removal",
    "needed_for_values",
]

MAX_GROUP_DEPTH = 8  # HS_VLIST nesting followed at most this deep (cycles end sooner)

#: Reads the value ``index`` of ``handle``; None if either does not exist.
ValueReader = Callable[[ValueRef], HandleValue | None]

P = AdminPermission


class Operation(enum.Enum):
    """Operations whose permission is a single HS_ADMIN bit."""

    CREATE_HANDLE = P.ADD_HANDLE
    DELETE_HANDLE = P.DELETE_HANDLE
    CREATE_DERIVED_PREFIX = P.ADD_DERIVED_PREFIX
    DELETE_DERIVED_PREFIX = P.DELETE_DERIVED_PREFIX
    LIST_HANDLES = P.LIST_HANDLES
    READ_VALUES = P.READ_VALUE


def governing_record(operation: Operation, handle: Handle) -> Handle:
    """The handle whose HS_ADMIN values decide ``operation`` on ``handle``: the prefix record
    for creating a handle, listing a prefix, or creating or deleting a derived prefix (its
    parent's record); the handle itself otherwise."""
    if operation in (Operation.CREATE_HANDLE, Operation.LIST_HANDLES):
        if handle.is_prefix_record:  # creating 0.NA/88.101.5 is creating a derived prefix
            return _parent_record(handle)
        return prefix_record(handle.prefix)
    if operation in (Operation.CREATE_DERIVED_PREFIX, Operation.DELETE_DERIVED_PREFIX):
        return _parent_record(handle)
    return handle


def _parent_record(prefix_handle: Handle) -> Handle:
    prefix = prefix_handle.suffix
    parent, dot, _ = prefix.rpartition(".")
    if not dot:
        # A top-level prefix (88) is made by the root node's own administrator: 0.NA/0.NA
        return prefix_record("0.NA")
    return prefix_record(parent)


def needed_for_values(
    existing: Sequence[HandleValue], new: Sequence[HandleValue]
) -> AdminPermission:
    """The permissions that writing ``new`` into a record holding ``existing`` takes: adding
    or modifying an HS_ADMIN value needs ADD_ADMIN or MODIFY_ADMIN, any other value ADD_VALUE
    or MODIFY_VALUE."""
    by_index = {value.index: value for value in existing}
    needed = P(0)
    for value in new:
        is_admin = value.has_type(HS_ADMIN) or (
            value.index in by_index and by_index[value.index].has_type(HS_ADMIN)
        )
        replacing = value.index in by_index
        if is_admin:
            needed |= P.MODIFY_ADMIN if replacing else P.ADD_ADMIN
        else:
            needed |= P.MODIFY_VALUE if replacing else P.ADD_VALUE
    return needed


def needed_for_removal(existing: Sequence[HandleValue], indexes: Iterable[int]) -> AdminPermission:
    """REMOVE_ADMIN for HS_ADMIN values, REMOVE_VALUE for any other."""
    by_index = {value.index: value for value in existing}
    needed = P(0)
    for index in indexes:
        value = by_index.get(index)
        needed |= (
            P.REMOVE_ADMIN if value is not None and value.has_type(HS_ADMIN) else P.REMOVE_VALUE
        )
    return needed


def _same(a: ValueRef, b: ValueRef) -> bool:
    return a.index == b.index and match_key(a.handle) == match_key(b.handle)


def _member(
    identity: ValueRef, group: ValueRef, read: ValueReader, depth: int, seen: set[str]
) -> bool:
    """Whether ``identity`` is ``group`` or, when ``group`` is an HS_VLIST, within it."""
    if _same(identity, group):
        return True
    key = f"{group.index}:{match_key(group.handle)}"
    if depth >= MAX_GROUP_DEPTH or key in seen:
        return False
    seen.add(key)
    value = read(group)
    if value is None or not value.has_type(HS_VLIST) or not isinstance(value.data, tuple):
        return False
    return any(_member(identity, entry, read, depth + 1, seen) for entry in value.data)


def holds(
    identity: ValueRef,
    needed: AdminPermission,
    admin_values: Iterable[HandleValue],
    read: ValueReader,
) -> bool:
    """Whether ``identity`` holds every permission in ``needed`` through the HS_ADMIN values
    given (of the governing record). Permissions may come from several HS_ADMIN values; a
    record with no HS_ADMIN value grants nothing (only the node's own administrator may then
    change it), and an empty ``needed`` is never granted: callers name what they need."""
    if not needed:
        return False
    granted = P(0)
    for value in admin_values:
        if not value.has_type(HS_ADMIN) or not isinstance(value.data, AdminRef):
            continue
        admin: AdminRef = value.data
        if admin.permissions & needed and _member(identity, admin.identity, read, 0, set()):
            granted |= admin.permissions
        if needed in granted:
            return True
    return False
