"""ExperimentService servicer: proto in, `Experiments` use case, proto out.

The scopes are the methods' rules in the proto (enforced by the shared middleware); on top
of them every method refuses a token whose subject is a user — experiments speak about
many users, and ``marketing.read`` is user-delegable.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import grpc
from furima.marketing.v1 import experiment_service_pb2 as pb
from furima.marketing.v1 import experiment_service_pb2_grpc as pb_grpc

from libs.auth import current_principal
from libs.errors import FieldViolation, InvalidArgument, PermissionDenied
from libs.pb import decode_page_token, next_page, page_size, ts
from services.marketing.domain.experiment_runs import (
    Assignment,
    ConversionOutcome,
    ExperimentDraft,
    ExperimentStatus,
    StoredExperiment,
)
from services.marketing.domain.experiments import Variant, VariantResult
from services.marketing.domain.stats import Caveat
from services.marketing.service.experiments import Experiments, ResultsReport

Context = grpc.aio.ServicerContext[Any, Any]

EXPERIMENT_SERVICE = pb.DESCRIPTOR.services_by_name["ExperimentService"]
register_experiments = pb_grpc.add_ExperimentServiceServicer_to_server

MAX_PAGE_SIZE = 200

_STATUS = {
    ExperimentStatus.RUNNING: pb.EXPERIMENT_STATUS_RUNNING,
    ExperimentStatus.ENDED: pb.EXPERIMENT_STATUS_ENDED,
}
_OUTCOME = {
    ConversionOutcome.COUNTED: pb.CONVERSION_OUTCOME_COUNTED,
    ConversionOutcome.ALREADY_CONVERTED: pb.CONVERSION_OUTCOME_ALREADY_CONVERTED,
    ConversionOutcome.NOT_EXPOSED: pb.CONVERSION_OUTCOME_NOT_EXPOSED,
    ConversionOutcome.OUTSIDE_WINDOW: pb.CONVERSION_OUTCOME_OUTSIDE_WINDOW,
}
_CAVEAT = {
    Caveat.NO_EXPOSURES: pb.CAVEAT_NO_EXPOSURES,
    Caveat.NO_CONTROL_CONVERSIONS: pb.CAVEAT_NO_CONTROL_CONVERSIONS,
    Caveat.DEGENERATE: pb.CAVEAT_DEGENERATE,
    Caveat.SMALL_SAMPLE: pb.CAVEAT_SMALL_SAMPLE,
}


class ExperimentServicer(pb_grpc.ExperimentServiceServicer):
    """Marketers manage and read experiments; services assign variants and report conversions."""

    def __init__(self, experiments: Experiments) -> None:
        self._experiments = experiments

    async def CreateExperiment(
        self, request: pb.CreateExperimentRequest, context: Context
    ) -> pb.CreateExperimentResponse:
        """Create under the caller's id; the same definition again returns it."""
        _refuse_users()
        stored = await self._experiments.create(draft_from_pb(request.experiment))
        return pb.CreateExperimentResponse(experiment=experiment_pb(stored))

    async def GetExperiment(self, request: pb.GetExperimentRequest, context: Context) -> pb.GetExperimentResponse:
        """One experiment."""
        _refuse_users()
        return pb.GetExperimentResponse(experiment=experiment_pb(await self._experiments.get(request.experiment_id)))

    async def ListExperiments(self, request: pb.ListExperimentsRequest, context: Context) -> pb.ListExperimentsResponse:
        """Experiments by id, a page at a time."""
        _refuse_users()
        limit = page_size(request.page_size, maximum=MAX_PAGE_SIZE)
        found = await self._experiments.list_experiments(_after(request.page_token), limit + 1)
        page, token = next_page(found, limit, lambda e: e.experiment_id)
        return pb.ListExperimentsResponse(experiments=[experiment_pb(e) for e in page], next_page_token=token)

    async def EndExperiment(self, request: pb.EndExperimentRequest, context: Context) -> pb.EndExperimentResponse:
        """End for good (again: unchanged)."""
        _refuse_users()
        return pb.EndExperimentResponse(experiment=experiment_pb(await self._experiments.end(request.experiment_id)))

    async def AssignVariant(self, request: pb.AssignVariantRequest, context: Context) -> pb.AssignVariantResponse:
        """The user's sticky variant, logging the exposure unless skipped."""
        _refuse_users()
        assignment = await self._experiments.assign_variant(
            request.experiment_id, request.user_id, log_exposure=not request.skip_exposure
        )
        return assignment_pb(assignment)

    async def RecordConversion(
        self, request: pb.RecordConversionRequest, context: Context
    ) -> pb.RecordConversionResponse:
        """Count the user's conversion, or say why it does not count."""
        _refuse_users()
        occurred_at = request.occurred_at.ToDatetime(tzinfo=UTC) if request.HasField("occurred_at") else None
        outcome = await self._experiments.record_conversion(request.experiment_id, request.user_id, occurred_at)
        return pb.RecordConversionResponse(outcome=_OUTCOME[outcome])

    async def GetExperimentResults(
        self, request: pb.GetExperimentResultsRequest, context: Context
    ) -> pb.GetExperimentResultsResponse:
        """Per-variant numbers against the control, and the sample-ratio check."""
        _refuse_users()
        return results_pb(await self._experiments.results(request.experiment_id, request.confidence))


def _refuse_users() -> None:
    """Experiments are about many users: no user token may call them, whatever its scopes."""
    if current_principal().is_user:
        raise PermissionDenied("experiments are not available to user tokens", reason="USER_TOKEN_REFUSED")


def _after(page_token: str) -> str:
    """The last experiment id of the previous page ("" for the first page)."""
    cursor = decode_page_token(page_token)
    if cursor is None:
        return ""
    if len(cursor) != 1 or not isinstance(cursor[0], str):
        raise InvalidArgument("page_token is not valid", [FieldViolation("page_token", "not a token this API issued")])
    return cursor[0]


def draft_from_pb(message: pb.Experiment) -> ExperimentDraft:
    """The caller's definition (output-only fields are ignored)."""
    return ExperimentDraft(
        experiment_id=message.experiment_id,
        variants=tuple(Variant(v.name, v.weight) for v in message.variants),
        control=message.control,
        salt=message.salt,
        description=message.description,
        conversion_event_type=message.conversion_event_type,
        conversion_window=message.conversion_window.ToTimedelta() if message.HasField("conversion_window") else None,
    )


def experiment_pb(stored: StoredExperiment) -> pb.Experiment:
    """The Experiment message."""
    definition = stored.definition
    experiment = definition.experiment
    return pb.Experiment(
        experiment_id=experiment.experiment_id,
        description=definition.description,
        salt=experiment.salt,
        variants=[pb.ExperimentVariant(name=v.name, weight=v.weight) for v in experiment.variants],
        control=experiment.control,
        conversion_event_type=definition.conversion_event_type,
        conversion_window=definition.conversion_window,
        status=_STATUS[stored.status],
        campaign_id=definition.campaign_id,
        created_at=stored.created_at,
        ended_at=ts(stored.ended_at),
    )


def assignment_pb(assignment: Assignment) -> pb.AssignVariantResponse:
    """The AssignVariant answer (``assigned_at`` unset when nothing is stored)."""
    return pb.AssignVariantResponse(
        variant=assignment.variant,
        is_control=assignment.is_control,
        holdout=assignment.holdout,
        first_exposure=assignment.first_exposure,
        assigned_at=ts(assignment.assigned_at),
    )


def results_pb(report: ResultsReport) -> pb.GetExperimentResultsResponse:
    """The results message: values the domain could not compute stay absent."""
    results = report.results
    return pb.GetExperimentResultsResponse(
        experiment_id=results.experiment_id,
        confidence=results.confidence,
        variants=[variant_result_pb(v) for v in results.variants],
        srm_chi_square=results.sample_ratio.chi_square,
        srm_p_value=results.sample_ratio.p_value,
        srm_detected=results.sample_ratio.mismatch,
        computed_at=report.computed_at,
    )


def variant_result_pb(row: VariantResult) -> pb.VariantResult:
    """One variant's numbers; the comparison's fields only for a non-control variant."""
    out = pb.VariantResult(
        variant=row.name,
        is_control=row.is_control,
        exposures=row.exposures,
        conversions=row.conversions,
        rate=row.rate,
    )
    comparison = row.comparison
    if comparison is None:
        return out
    relative, absolute = comparison.relative_lift_interval, comparison.absolute_lift_interval
    out.MergeFrom(
        pb.VariantResult(
            lift=comparison.relative_lift,
            lift_ci_low=None if relative is None else relative.low,
            lift_ci_high=None if relative is None else relative.high,
            absolute_lift=comparison.absolute_lift,
            absolute_lift_ci_low=None if absolute is None else absolute.low,
            absolute_lift_ci_high=None if absolute is None else absolute.high,
            p_value=comparison.p_value,
            caveats=sorted(_CAVEAT[c] for c in comparison.caveats),
        )
    )
    return out
