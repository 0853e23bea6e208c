"""The rules around a running experiment: checking a definition, the global holdout, what an
AssignVariant answers without writing, and whether a conversion counts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libs.errors import InvalidArgument
from services.marketing.domain.events import DEFAULT_CATALOGUE
from services.marketing.domain.experiment_runs import (
    Assignment,
    ConversionOutcome,
    ExperimentDraft,
    ExperimentStatus,
    GlobalHoldout,
    Participation,
    StoredExperiment,
    check_conversion_time,
    check_participant,
    conversion_outcome,
    define,
    settled_assignment,
)
from services.marketing.domain.experiments import Variant

T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def draft(**changes: object) -> ExperimentDraft:
    """A valid draft, with changes."""
    fields: dict[str, object] = {
        "experiment_id": "exp_button",
        "variants": (Variant("control", 1), Variant("treatment", 1)),
        "control": "control",
        "conversion_event_type": "payment_completed",
        "conversion_window": timedelta(days=7),
    }
    fields.update(changes)
    return ExperimentDraft(**fields)  # type: ignore[arg-type]


def run(status: ExperimentStatus = ExperimentStatus.RUNNING, window: timedelta = 24 * HOUR) -> StoredExperiment:
    """A stored experiment ``exp_button`` with the given status and conversion window."""
    return StoredExperiment(define(draft(conversion_window=window), DEFAULT_CATALOGUE), status, T0, None, 1)


def violations(error: pytest.ExceptionInfo[InvalidArgument]) -> dict[str, str]:
    """The field paths of an `InvalidArgument` and their descriptions."""
    return {v.field: v.description for v in error.value.violations}


def test_define_defaults_the_salt_to_the_id() -> None:
    """An empty salt becomes the experiment id; a given one is kept."""
    assert define(draft(), DEFAULT_CATALOGUE).experiment.salt == "exp_button"
    assert define(draft(salt="s2"), DEFAULT_CATALOGUE).experiment.salt == "s2"


def test_define_reports_every_problem_once() -> None:
    """Domain and service problems come together; a defaulted salt is not blamed twice."""
    with pytest.raises(InvalidArgument) as error:
        define(
            draft(
                experiment_id="bad id",
                variants=(Variant("a", 0),),
                control="z",
                description="x" * 1001,
                conversion_event_type="payment_complete",
                conversion_window=timedelta(minutes=59),
            ),
            DEFAULT_CATALOGUE,
        )
    found = violations(error)
    assert set(found) == {
        "experiment.experiment_id",
        "experiment.variants",
        "experiment.variants[0].weight",
        "experiment.control",
        "experiment.description",
        "experiment.conversion_event_type",
        "experiment.conversion_window",
    }
    assert "did you mean 'payment_completed'" in found["experiment.conversion_event_type"]


def test_define_needs_a_conversion_window_within_bounds() -> None:
    """The window is required, from 1 hour to 90 days inclusive."""
    with pytest.raises(InvalidArgument) as error:
        define(draft(conversion_window=None), DEFAULT_CATALOGUE)
    assert "is required" in violations(error)["experiment.conversion_window"]
    with pytest.raises(InvalidArgument):
        define(draft(conversion_window=timedelta(days=90, microseconds=1)), DEFAULT_CATALOGUE)
    assert define(draft(conversion_window=HOUR), DEFAULT_CATALOGUE).conversion_window == HOUR
    assert define(draft(conversion_window=timedelta(days=90)), DEFAULT_CATALOGUE)


def test_define_allows_conversions_only_through_the_rpc() -> None:
    """Without a conversion event type, conversions come only from RecordConversion."""
    assert define(draft(conversion_event_type=""), DEFAULT_CATALOGUE).conversion_event_type == ""


def test_a_bad_salt_is_blamed_on_the_salt() -> None:
    """A given salt with a ':' is the salt's problem, not the id's."""
    with pytest.raises(InvalidArgument) as error:
        define(draft(salt="a:b"), DEFAULT_CATALOGUE)
    assert set(violations(error)) == {"experiment.salt"}


def test_participants_need_ids_the_store_can_keep() -> None:
    """Experiment and user ids are required; a user id is at most 64 characters."""
    with pytest.raises(InvalidArgument) as error:
        check_participant("", "u" * 65)
    assert set(violations(error)) == {"experiment_id", "user_id"}
    check_participant("exp", "ユーザー_42")


def test_conversion_time_is_required_and_not_in_the_future() -> None:
    """A missing time, or one more than 5 minutes ahead, is refused."""
    with pytest.raises(InvalidArgument):
        check_conversion_time(None, T0)
    with pytest.raises(InvalidArgument):
        check_conversion_time(T0 + timedelta(minutes=6), T0)
    assert check_conversion_time(T0 + timedelta(minutes=5), T0) == T0 + timedelta(minutes=5)


def test_holdout_matches_the_shared_vectors() -> None:
    """The holdout is the documented hash: the 499/500 boundary at 500 bps."""
    holdout = GlobalHoldout("global-2026", 500)
    assert holdout.contains("usr_boundary_465")
    assert not holdout.contains("usr_boundary_33008")
    assert not GlobalHoldout("global-2026", 0).contains("usr_boundary_465")


def test_holdout_refuses_bad_settings() -> None:
    """A salt outside the alphabet, or bps outside 0-10000, fails at construction."""
    with pytest.raises(ValueError, match="salt"):
        GlobalHoldout("a:b", 10)
    with pytest.raises(ValueError, match="holdout_bps"):
        GlobalHoldout("g", 10_001)


def test_settled_assignment() -> None:
    """Holdout, ended, and assigned-and-exposed users are answered without writing."""
    stored = Participation("treatment", T0, T0 + HOUR)
    held = settled_assignment(run(), stored, held_out=True, log_exposure=True)
    assert held == Assignment("control", True, True, False, None)
    ended = run(ExperimentStatus.ENDED)
    assert settled_assignment(ended, stored, held_out=False, log_exposure=True) == Assignment(
        "treatment", False, False, False, T0
    )
    assert settled_assignment(ended, Participation(), held_out=False, log_exposure=True) == Assignment(
        "control", True, False, False, None
    )
    assert settled_assignment(run(), stored, held_out=False, log_exposure=True) == Assignment(
        "treatment", False, False, False, T0
    )
    assigned_only = Participation("treatment", T0)
    assert settled_assignment(run(), assigned_only, held_out=False, log_exposure=True) is None
    assert settled_assignment(run(), assigned_only, held_out=False, log_exposure=False) is not None
    assert settled_assignment(run(), Participation(), held_out=False, log_exposure=False) is None


def test_conversion_outcome_boundaries() -> None:
    """Exposed at or before the conversion, within the window inclusive; once per user."""
    exposed = Participation("control", T0, T0)
    experiment = run(window=24 * HOUR)
    assert conversion_outcome(experiment, Participation("control", T0), T0) is ConversionOutcome.NOT_EXPOSED
    assert conversion_outcome(experiment, exposed, T0 - timedelta(microseconds=1)) is ConversionOutcome.NOT_EXPOSED
    assert conversion_outcome(experiment, exposed, T0) is ConversionOutcome.COUNTED
    assert conversion_outcome(experiment, exposed, T0 + 24 * HOUR) is ConversionOutcome.COUNTED
    late = T0 + 24 * HOUR + timedelta(microseconds=1)
    assert conversion_outcome(experiment, exposed, late) is ConversionOutcome.OUTSIDE_WINDOW
    converted = Participation("control", T0, T0, T0 + HOUR)
    assert conversion_outcome(experiment, converted, T0 + HOUR) is ConversionOutcome.COUNTED
    assert conversion_outcome(experiment, converted, T0 + 2 * HOUR) is ConversionOutcome.ALREADY_CONVERTED
