"""Projects inside a session. Session helpers only; the use cases are service/projects.py."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from signgate.errors import NotFound
from signgate.store.models import Project


def get_project(session: Session, name: str) -> Project:
    project = session.execute(select(Project).where(Project.name == name)).scalar_one_or_none()
    if project is None:
        raise NotFound(f"no project named {name!r}")
    return project
