"""Write side of a project's pass/fail criteria."""

from __future__ import annotations

from uuid import UUID

import msgspec

from commands.application import Position, Verity
from domain.criteria import CriteriaValues, ProjectCriteria, check_values, criteria_id, new_criteria
from domain.evaluation import Criteria
from domain.projects import Project


class ConfigureCriteria(msgspec.Struct, frozen=True, kw_only=True):
    project_id: UUID
    values: CriteriaValues


def configure_criteria(cmd: ConfigureCriteria, app: Verity) -> Position | None:
    check_values(cmd.values)
    app.load(Project, cmd.project_id).ensure_exists()
    ident = criteria_id(cmd.project_id)
    criteria = (
        app.load(ProjectCriteria, ident) if app.exists(ident) else new_criteria(cmd.project_id)
    )
    criteria.configure(cmd.values)
    return app.commit(criteria)


def criteria_of(app: Verity, project_id: UUID | None) -> Criteria | None:
    """The project's criteria as the evaluation engine takes them; None when never configured."""
    if project_id is None or not app.exists(criteria_id(project_id)):
        return None
    return app.load(ProjectCriteria, criteria_id(project_id)).values.as_criteria()
