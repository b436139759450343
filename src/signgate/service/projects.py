"""Projects: product lines that own keys."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from signgate.audit.model import Action, Outcome, Record
from signgate.errors import Conflict, NotFound
from signgate.policy import decide
from signgate.policy.model import Actor, check_name
from signgate.service.context import Caller, Context, Target, require
from signgate.service.records.authorities import ensure_issuing_ca
from signgate.service.records.projects import get_project
from signgate.service.views import ProjectView
from signgate.store.models import Key, Project


def _view(session: Session, project: Project) -> ProjectView:
    count = session.execute(
        select(func.count()).select_from(Key).where(Key.project_id == project.id)
    ).scalar_one()
    return ProjectView(project.name, project.created_at, project.created_by, count)


def create(ctx: Context, caller: Caller, name: str) -> ProjectView:
    def run(session: Session, actor: Actor) -> ProjectView:
        check_name("project", name)
        d = decide.may_manage(actor, None)
        require(d.allowed, d.reason)
        exists = session.execute(select(Project.id).where(Project.name == name)).first()
        if exists:
            raise Conflict(f"project {name!r} already exists")
        project = Project(name=name, created_at=ctx.clock.now(), created_by=actor.name)
        session.add(project)
        session.flush()
        ctx.record(session, Record(actor.name, Action.PROJECT_CREATE, Outcome.ALLOWED,
                                   name, project=name))
        ensure_issuing_ca(ctx, session, project, actor.name)
        return ProjectView(project.name, project.created_at, project.created_by, 0)

    return ctx.write(caller, Target(Action.PROJECT_CREATE, name, project=name), run)


def list_projects(ctx: Context, caller: Caller) -> list[ProjectView]:
    def run(session: Session, actor: Actor) -> list[ProjectView]:
        projects = session.execute(select(Project).order_by(Project.name)).scalars().all()
        return [_view(session, p) for p in projects if decide.may_see(actor, p.name)]

    return ctx.read(caller, Target(Action.READ, "projects"), run)


def show(ctx: Context, caller: Caller, name: str) -> ProjectView:
    check_name("project", name)

    def run(session: Session, actor: Actor) -> ProjectView:
        if not decide.may_see(actor, name):
            raise NotFound(f"no project named {name!r}")
        return _view(session, get_project(session, name))

    return ctx.read(caller, Target(Action.READ, name, project=name), run)
