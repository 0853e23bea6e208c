"""An experiment as the service runs it: the definition a marketer (or a campaign) gives,
its status, what one user has been through, and the rules that decide what a call answers.

`domain.experiments` owns assignment (the hash, the buckets, stickiness) and results; this
module adds what ExperimentService needs around them — the conversion event and window, the
lifecycle, the global holdout, and whether an AssignVariant or RecordConversion has to write
anything. Pure: the store reads and writes, the service wires the two together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from libs.errors import FieldViolation, InvalidArgument, Violations
from services.marketing.domain.events import MAX_FUTURE_SKEW, Catalogue, suggestion
from services.marketing.domain.experiments import MAX_NAME_LENGTH, Experiment, Variant, in_holdout

MIN_CONVERSION_WINDOW = timedelta(hours=1)
MAX_CONVERSION_WINDOW = timedelta(days=90)
MAX_DESCRIPTION_LENGTH = 1000
MAX_USER_ID_LENGTH = 64
"""User ids are hashed exactly as given (any characters); the store keeps up to 64."""


class ExperimentStatus(StrEnum):
    """RUNNING until ended, then ENDED for good."""

    RUNNING = "running"
    ENDED = "ended"


class ConversionOutcome(StrEnum):
    """What RecordConversion did with a conversion."""

    COUNTED = "counted"
    """The user's one counted conversion (also the answer to a replay of that call)."""
    ALREADY_CONVERTED = "already_converted"
    """The user's conversion was counted earlier; this one changes nothing."""
    NOT_EXPOSED = "not_exposed"
    """The user had no logged exposure at or before the conversion."""
    OUTSIDE_WINDOW = "outside_window"
    """The conversion came later than the conversion window after the first exposure."""


@dataclass(frozen=True)
class ExperimentDraft:
    """A definition as the caller sent it, not yet checked (see `define`)."""

    experiment_id: str
    variants: tuple[Variant, ...]
    control: str
    salt: str = ""
    """Empty: the experiment id."""
    description: str = ""
    conversion_event_type: str = ""
    """Empty: conversions come only through RecordConversion."""
    conversion_window: timedelta | None = None


@dataclass(frozen=True)
class ExperimentDefinition:
    """Everything the creator chose; two creations of one id must agree on all of it."""

    experiment: Experiment
    description: str
    conversion_event_type: str
    conversion_window: timedelta
    campaign_id: str = ""
    """Set when a campaign created the experiment (the id is then the campaign's)."""


@dataclass(frozen=True)
class StoredExperiment:
    """A definition with its lifecycle, as stored."""

    definition: ExperimentDefinition
    status: ExperimentStatus
    created_at: datetime
    ended_at: datetime | None
    version: int

    @property
    def experiment(self) -> Experiment:
        """The assignment rules."""
        return self.definition.experiment

    @property
    def experiment_id(self) -> str:
        """The caller-chosen id."""
        return self.definition.experiment.experiment_id


@dataclass(frozen=True)
class Participation:
    """What one user has been through in one experiment (``None``: not yet)."""

    variant: str | None = None
    assigned_at: datetime | None = None
    first_exposed_at: datetime | None = None
    converted_at: datetime | None = None


@dataclass(frozen=True)
class Assignment:
    """The answer to AssignVariant."""

    variant: str
    is_control: bool
    holdout: bool
    """The user is in the global holdout: the control, nothing stored or logged."""
    first_exposure: bool
    """This call logged the user's first exposure (and a VariantExposed event)."""
    assigned_at: datetime | None
    """When the stored assignment was made; ``None`` when there is none."""


@dataclass(frozen=True)
class GlobalHoldout:
    """The users who get nothing from marketing: buckets ``[0, bps)`` of the holdout hash
    (docs/marketing-experiments.md). ``bps = 0`` holds nobody out.
    """

    salt: str = "global"
    bps: int = 0

    def __post_init__(self) -> None:
        # in_holdout checks the salt and the range; checking here fails at startup instead.
        in_holdout("", self.salt, self.bps)

    def contains(self, user_id: str) -> bool:
        """Whether ``user_id`` is held out."""
        return self.bps > 0 and in_holdout(user_id, self.salt, self.bps)


def define(draft: ExperimentDraft, catalogue: Catalogue, *, campaign_id: str = "") -> ExperimentDefinition:
    """Check a draft and default its salt; every problem at once as `InvalidArgument`
    naming the request's fields (``experiment.…``).
    """
    problems = Violations()
    experiment: Experiment | None = None
    try:
        experiment = Experiment(draft.experiment_id, draft.salt or draft.experiment_id, draft.variants, draft.control)
    except InvalidArgument as invalid:
        # A defaulted salt is the id: its problem is reported once, on the id.
        problems.items.extend(v for v in invalid.violations if draft.salt or v.field != "experiment.salt")
    if len(draft.description) > MAX_DESCRIPTION_LENGTH:
        problems.add("experiment.description", f"at most {MAX_DESCRIPTION_LENGTH} characters")
    event_type = draft.conversion_event_type
    if event_type and catalogue.event_type(event_type) is None:
        problems.add(
            "experiment.conversion_event_type",
            f"unknown event type {event_type!r}{suggestion(event_type, catalogue.event_types)}",
        )
    window = draft.conversion_window
    if window is None:
        problems.add("experiment.conversion_window", "is required: 1 hour to 90 days")
    elif not MIN_CONVERSION_WINDOW <= window <= MAX_CONVERSION_WINDOW:
        problems.add("experiment.conversion_window", "must be between 1 hour and 90 days")
    problems.raise_if_any("the experiment has invalid fields")
    assert experiment is not None
    assert window is not None
    return ExperimentDefinition(experiment, draft.description, event_type, window, campaign_id)


def check_participant(experiment_id: str, user_id: str) -> None:
    """Refuse a call without an experiment id, or without a user id the store can keep."""
    problems = Violations()
    problems.require(experiment_id, "experiment_id")
    if len(experiment_id) > MAX_NAME_LENGTH:
        problems.add("experiment_id", f"at most {MAX_NAME_LENGTH} characters")
    problems.require(user_id, "user_id")
    if len(user_id) > MAX_USER_ID_LENGTH:
        problems.add("user_id", f"at most {MAX_USER_ID_LENGTH} characters")
    problems.raise_if_any()


def check_conversion_time(occurred_at: datetime | None, now: datetime) -> datetime:
    """The conversion's time: required, and not in the future (a few minutes of clock skew
    allowed, as for tracked events).
    """
    if occurred_at is None:
        raise InvalidArgument("occurred_at is required", [FieldViolation("occurred_at", "is required")])
    if occurred_at > now + MAX_FUTURE_SKEW:
        raise InvalidArgument(
            "occurred_at is in the future", [FieldViolation("occurred_at", "must not be in the future")]
        )
    return occurred_at


def settled_assignment(
    run: StoredExperiment, seen: Participation, *, held_out: bool, log_exposure: bool
) -> Assignment | None:
    """The answer to AssignVariant when nothing needs writing; ``None`` when the call must
    store the assignment or log the first exposure.

    The holdout comes first (it gets nothing, whatever was stored before the holdout grew);
    an ENDED experiment answers the stored variant, or the control, and logs nothing.
    """
    control = run.experiment.control
    if held_out:
        return Assignment(control, True, True, False, None)
    if run.status is ExperimentStatus.ENDED:
        variant = seen.variant or control
        return Assignment(variant, variant == control, False, False, seen.assigned_at)
    if seen.variant is not None and (not log_exposure or seen.first_exposed_at is not None):
        return Assignment(seen.variant, seen.variant == control, False, False, seen.assigned_at)
    return None


def conversion_outcome(run: StoredExperiment, seen: Participation, occurred_at: datetime) -> ConversionOutcome:
    """Whether a conversion at ``occurred_at`` counts: the user must have been exposed at or
    before it, and it must fall within the conversion window of that first exposure; each
    user counts once. A replay of the counted call (the same ``occurred_at``) answers
    COUNTED again, so a retried RecordConversion gets its first answer.
    """
    exposed = seen.first_exposed_at
    if exposed is None or occurred_at < exposed:
        return ConversionOutcome.NOT_EXPOSED
    if occurred_at > exposed + run.definition.conversion_window:
        return ConversionOutcome.OUTSIDE_WINDOW
    if seen.converted_at is not None and seen.converted_at != occurred_at:
        return ConversionOutcome.ALREADY_CONVERTED
    return ConversionOutcome.COUNTED
