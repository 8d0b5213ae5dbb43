"""Writes that hang on one guarding UPDATE, as one PostgreSQL statement: the UPDATE claims a row
(an authorization code, a login request) with ``... WHERE <not yet used> RETURNING``, and each
INSERT selects its one row of parameters from what the UPDATE returned, so it writes only when
the claim succeeded. One statement is atomic without a transaction: one round trip, where the same
writes in a transaction cost ``BEGIN``, one per statement and ``COMMIT`` (decision 22)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, bindparam, insert, select
from sqlalchemy.sql.selectable import CTE

from bridge.store.models import Base


def insert_when(guard: CTE, model: type[Base], columns: Sequence[str], prefix: str,
                from_guard: Mapping[str, ColumnElement[Any]] | None = None) -> CTE:
    """``INSERT INTO <model's table> (columns) SELECT <the parameters prefix + column> FROM
    guard``: a row for each row the guard returned (one, or none). A column named in
    ``from_guard`` takes that expression (of what the guard returned) instead of a parameter."""
    table = model.__table__
    taken = from_guard or {}
    values = select(*(taken[name] if name in taken
                      else bindparam(prefix + name, type_=table.c[name].type)
                      for name in columns))
    return insert(model).from_select(list(columns), values.select_from(guard)).cte(prefix + "row")


def parameters(prefix: str, columns: Sequence[str], row: Mapping[str, Any]) -> dict[str, Any]:
    """The values of ``row`` under the names ``insert_when(..., columns, prefix)`` binds."""
    return {prefix + name: row[name] for name in columns}
