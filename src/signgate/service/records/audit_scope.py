"""Which audit entries a grant's scope covers, as a SQL condition (audit log pages,
signature reports and their totals select by it)."""

from __future__ import annotations

from sqlalchemy import and_
from sqlalchemy.sql.elements import ColumnElement

from signgate.policy.model import Scope
from signgate.store.models import AuditEntry


def entry_in_scope(scope: Scope) -> ColumnElement[bool]:
    """The entries of ``scope``: a project's (about the project itself or any of its keys),
    or one key's."""
    if scope.key is None:
        return AuditEntry.project == scope.project
    return and_(AuditEntry.project == scope.project, AuditEntry.key_ref == str(scope))
