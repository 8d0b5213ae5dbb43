"""``GET /Users?filter=...``: the filter is parsed and checked by scim2-models. The lookups
provisioning clients make before every change (``userName eq "..."``, ``externalId eq "..."``,
``id eq "..."``) go to the database's indexes (a ``userName`` is then told apart from its
look-alikes as the evaluated filters tell it, scim_model.case_key); any other filter is
evaluated by scim2-models over the IdP's users, in pages (RFC 7644 §3.4.2).

That evaluation costs the number of the IdP's users times the terms of the filter, in the
request: a filter is refused (``invalidFilter``) before it is evaluated when it is longer than
``MAX_FILTER_LENGTH`` characters or has more than ``MAX_FILTER_TERMS`` terms. Okta and Entra ID
send one term; a client that asks for a batch of users by name in one filter has a hundred."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scim2_models import SCIMException, ScimFilter
from scim2_models.path import CompareOperator, Comparison, LogicalExpr, Not, ValuePath
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from bridge.errors import ProvisioningError
from bridge.provisioning.scim_model import POLICY, User, same_name, stored_keys
from bridge.store.models import ScimUser

MAX_COUNT = 200  # ServiceProviderConfig's filter.maxResults
UserFilter = ScimFilter[User]


MAX_START_INDEX = 2**31 - 1
MAX_FILTER_LENGTH = 16_384  # 100 terms of a userName of 150 characters
MAX_FILTER_TERMS = 100  # comparisons, presence tests and the and/or/not that join them


@dataclass(frozen=True)
class Page:
    total: int
    rows: list[ScimUser]


def search_users(session: Session, slug: str, filter_text: str | None, start_index: int,
                 count: int, *, load: Callable[[ScimUser], Any]) -> Page:
    # RFC 7644 §3.4.2.4: a startIndex past the last result gives an empty page; capped so that
    # the offset fits every database's integer.
    start_index, count = min(max(start_index, 1), MAX_START_INDEX), min(max(count, 0), MAX_COUNT)
    query = select(ScimUser).where(ScimUser.idp_slug == slug).order_by(ScimUser.created_at,
                                                                        ScimUser.id)
    if not filter_text:
        return _page(session, query, start_index, count)
    parsed = parse_filter(filter_text)
    indexed = _indexed(parsed.ast)
    if indexed is not None:
        return _page(session, query.where(indexed), start_index, count)
    user_name = _user_name_eq(parsed.ast)
    if user_name is not None:
        # The index finds the users whose names fold to this one (a handful at most); of them,
        # only the one named this, up to letter case, is this user (scim_model.case_key).
        candidates = query.where(ScimUser.user_name_key.in_(sorted(stored_keys(user_name))))
        matching = [row for row in session.scalars(candidates)
                    if same_name(user_name, load(row).user_name or "")]
        return Page(total=len(matching), rows=matching[start_index - 1:start_index - 1 + count])
    with POLICY:  # strings compared as the indexed lookups compare them (comparison_key)
        matching = [row for row in session.scalars(query) if parsed.match(load(row))]
    return Page(total=len(matching), rows=matching[start_index - 1:start_index - 1 + count])


def check_filter_length(filter_text: object, what: str = "filter") -> None:
    """Refuse a filter (or a PATCH path, which may hold one) too long to be worth parsing."""
    if isinstance(filter_text, str) and len(filter_text) > MAX_FILTER_LENGTH:
        raise _invalid(f"at most {MAX_FILTER_LENGTH} characters.", what)


def parse_filter(filter_text: str) -> UserFilter:
    """``filter_text`` parsed and checked: refused as ``invalidFilter`` when it does not parse,
    is too long or has too many terms, or compares with a string that is not Unicode text (an
    unpaired surrogate, which neither the database nor UTF-8 can hold) or holds a NUL."""
    check_filter_length(filter_text)
    try:
        parsed = UserFilter(filter_text)
        root = parsed.ast
    except (SCIMException, ValueError) as error:
        raise _invalid(str(error)) from None
    check_filter_tree(root)
    return parsed


def check_filter_tree(root: object, what: str = "filter") -> None:
    """Refuse a parsed filter of more than ``MAX_FILTER_TERMS`` terms, or comparing with a
    string that is not Unicode text or holds a NUL."""
    terms, pending = 0, [root]
    while pending:  # the parser bounds the nesting; the terms of one and/or are a flat tuple
        node = pending.pop()
        terms += 1
        if terms > MAX_FILTER_TERMS:
            raise _invalid(f"at most {MAX_FILTER_TERMS} terms and operators.", what)
        if isinstance(node, LogicalExpr):
            pending.extend(node.terms)
        elif isinstance(node, Not):
            pending.append(node.expr)
        elif isinstance(node, ValuePath):
            pending.append(node.val_filter)
        elif isinstance(node, Comparison) and isinstance(node.value, str) \
                and not _storable(node.value):
            raise _invalid("a value that is not Unicode text or holds a NUL character.", what)


def _storable(value: str) -> bool:
    return "\x00" not in value and _SURROGATE.search(value) is None


_SURROGATE = re.compile("[\ud800-\udfff]")


def _invalid(detail: str, what: str = "filter") -> ProvisioningError:
    return ProvisioningError("scim_invalid", f"{what}: {detail}",
                             scim_type="invalidFilter" if what == "filter" else "invalidPath")


def _page(session: Session, query: Any, start_index: int, count: int) -> Page:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = list(session.scalars(query.offset(start_index - 1).limit(count))) if count else []
    return Page(total=total or 0, rows=rows)


def _eq_attribute(node: object) -> str | None:
    """The attribute of ``attr eq "value"`` on a core attribute, in lowercase, or None."""
    if (not isinstance(node, Comparison) or node.op != CompareOperator.eq
            or not isinstance(node.value, str) or node.attr_path.sub_attr is not None
            or node.attr_path.uri not in (None, "urn:ietf:params:scim:schemas:core:2.0:User")):
        return None
    return node.attr_path.attr.lower()


def _user_name_eq(node: object) -> str | None:
    """The name of ``userName eq "name"``, or None."""
    if _eq_attribute(node) == "username":
        assert isinstance(node, Comparison)
        return str(node.value)
    return None


def _indexed(node: object) -> ColumnElement[bool] | None:
    """The SQL condition of ``attr eq "value"`` on an attribute compared exactly, or None."""
    attribute = _eq_attribute(node)
    if attribute is None:
        return None
    assert isinstance(node, Comparison)
    if attribute == "externalid":  # caseExact true
        return ScimUser.external_id == node.value
    if attribute == "id":
        return ScimUser.id == node.value
    return None

