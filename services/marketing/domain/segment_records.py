"""Segments as the service handles them: the draft a caller gives (validated here, all
problems at once), the stored segment it reads back, and the answers of previews and
membership questions. Pure: the store keeps them, `service.segments` wires the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from libs.errors import FieldViolation, InvalidArgument
from services.marketing.domain.events import Catalogue
from services.marketing.domain.segments import compile_conditions, parse_expression
from services.marketing.domain.segments_ast import Node, segment_id_problem
from services.marketing.domain.segments_conditions import ConditionGroup

MAX_NAME_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 2000
DEFAULT_PREVIEW_SAMPLE = 20
MAX_PREVIEW_SAMPLE = 100

Definition = str | ConditionGroup
"""An expression in the segment language, or the structured conditions."""


@dataclass(frozen=True, slots=True)
class SegmentDraft:
    """A definition as a caller gives it (create, update, preview)."""

    segment_id: str
    display_name: str
    description: str
    definition: Definition | None


@dataclass(frozen=True, slots=True)
class Segment:
    """A stored segment, with what its definition reads (through references too)."""

    segment_id: str
    display_name: str
    description: str
    definition: Definition
    """As given: the expression, or the conditions."""
    canonical_expression: str
    referenced_segment_ids: tuple[str, ...]
    event_types: tuple[str, ...]
    """Event types whose arrival can change membership, through references too."""
    time_sensitive: bool
    version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SegmentPage:
    """A page of segments; ``next_after`` continues it (None: the last page)."""

    segments: tuple[Segment, ...]
    next_after: str | None


@dataclass(frozen=True, slots=True)
class Preview:
    """What an unsaved definition would select."""

    canonical_expression: str
    users_evaluated: int
    users_matched: int
    estimated_size: int
    exact: bool
    sample_user_ids: tuple[str, ...]
    evaluated_at: datetime


@dataclass(frozen=True, slots=True)
class Membership:
    """One user's membership, evaluated now."""

    member: bool
    segment_version: int
    evaluated_at: datetime


@dataclass(frozen=True, slots=True)
class MemberPage:
    """A page of members (user id order); ``next_after`` continues it."""

    user_ids: tuple[str, ...]
    next_after: str | None
    segment_version: int
    computed_at: datetime


@dataclass(frozen=True, slots=True)
class MemberCount:
    """The size of the materialized membership."""

    count: int
    segment_version: int
    computed_at: datetime


@dataclass(frozen=True, slots=True)
class RefreshReport:
    """What a sweep did: the segments swept, users evaluated, memberships begun and ended."""

    segment_ids: tuple[str, ...]
    users: int
    entered: int
    left: int
    started_at: datetime


def compile_draft(
    draft: SegmentDraft, catalogue: Catalogue, *, id_required: bool, problems: list[FieldViolation] | None = None
) -> Node:
    """The tree of the draft's definition; INVALID_ARGUMENT with every problem of the
    draft, ``problems`` found by the caller included. References are the caller's to
    check (`check_references`), against the segments stored when it writes.
    """
    problems = list(problems or [])
    if id_required or draft.segment_id:
        problem = segment_id_problem(draft.segment_id)
        if problem is not None:
            problems.append(FieldViolation("segment.segment_id", problem))
    if len(draft.display_name) > MAX_NAME_LENGTH:
        problems.append(FieldViolation("segment.display_name", f"at most {MAX_NAME_LENGTH} characters"))
    if len(draft.description) > MAX_DESCRIPTION_LENGTH:
        problems.append(FieldViolation("segment.description", f"at most {MAX_DESCRIPTION_LENGTH} characters"))
    node: Node | None = None
    try:
        if isinstance(draft.definition, str):
            node = parse_expression(draft.definition, catalogue, field="segment.expression")
        elif draft.definition is not None:
            node = compile_conditions(draft.definition, catalogue, field="segment.conditions")
        else:
            problems.append(FieldViolation("segment.expression", "a definition is required: expression or conditions"))
    except InvalidArgument as invalid:
        problems.extend(invalid.violations)
    if problems or node is None:
        raise InvalidArgument(f"the segment has {len(problems)} problem(s)", problems)
    return node
