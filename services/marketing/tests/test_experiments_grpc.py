"""ExperimentService over a real gRPC server behind the shared middleware: who may call
what, the round trip of every message, and domain errors as statuses with rich details.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from furima.marketing.v1 import experiment_service_pb2 as pb
from furima.marketing.v1 import experiment_service_pb2_grpc as pb_grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from libs.auth import DenyList, StaticKeys, TokenVerifier
from libs.clock import FrozenClock
from libs.events import Outbox
from libs.rpc import GrpcServer, ServerConfig, error_details, make_channel
from libs.storage import Database
from libs.testing import Forger, claims
from services.marketing.api.experiments import EXPERIMENT_SERVICE, ExperimentServicer, register_experiments
from services.marketing.domain.experiments import Experiment, Variant, assign
from services.marketing.domain.stats import VariantCounts, compare
from services.marketing.service.experiments import Experiments
from services.marketing.store import experiments as _experiments_tables  # noqa: F401 — registers the tables
from services.marketing.store.tables import outbox

T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
WRITE, READ, EVENTS = "marketing.write", "marketing.read", "marketing.events.write"


@pytest.fixture
def key() -> Forger:
    """Provide the key tokens are signed with."""
    return Forger(kid="k1")


@pytest.fixture
def clock() -> FrozenClock:
    """Provide a clock that moves only when told (a second before T0: exposures precede it)."""
    return FrozenClock(T0 - timedelta(seconds=1))


@pytest.fixture
async def stub(db: Database, key: Forger, clock: FrozenClock) -> AsyncIterator[pb_grpc.ExperimentServiceStub]:
    """Provide a stub of ExperimentService served on a free port."""
    verifier = TokenVerifier("furima-id", "furima.marketing", StaticKeys({"k1": key.key.public_key()}), DenyList())
    server = GrpcServer(service_name="furima.marketing", config=ServerConfig(port=0), verifier=verifier)
    experiments = Experiments(db, clock, Outbox(outbox, clock=clock))
    server.add(register_experiments, ExperimentServicer(experiments), EXPERIMENT_SERVICE)
    await server.start()
    async with make_channel(server.address, services=[EXPERIMENT_SERVICE]) as channel:
        yield pb_grpc.ExperimentServiceStub(channel)
    await server.stop(0)


def bearer(key: Forger, scope: str, subject: str = "svc-checkout") -> list[tuple[str, str]]:
    """Call metadata with a token for the marketing audience."""
    token = key.sign(claims(scope=scope, audience=["furima.marketing"], subject=subject, client_id=subject))
    return [("authorization", f"Bearer {token}")]


def experiment(**changes: Any) -> pb.Experiment:
    """A well-formed 1:1 experiment, with changes."""
    fields: dict[str, Any] = {
        "experiment_id": "exp_button",
        "description": "checkout button colour",
        "variants": [pb.ExperimentVariant(name="control", weight=1), pb.ExperimentVariant(name="treatment", weight=1)],
        "control": "control",
        "conversion_event_type": "payment_completed",
        "conversion_window": Duration(seconds=7 * 86400),
    }
    fields.update(changes)
    return pb.Experiment(**fields)


def at(value: datetime) -> Timestamp:
    """A Timestamp."""
    out = Timestamp()
    out.FromDatetime(value)
    return out


async def status_of(call: Awaitable[object]) -> tuple[grpc.StatusCode, dict[str, Any]]:
    """The status code and rich details of a failing call."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code(), error_details(caught.value)


async def create(stub: pb_grpc.ExperimentServiceStub, key: Forger, **changes: Any) -> pb.Experiment:
    """Create an experiment as a marketer."""
    request = pb.CreateExperimentRequest(experiment=experiment(**changes))
    return (await stub.CreateExperiment(request, metadata=bearer(key, WRITE))).experiment


async def test_create_get_list_end(stub: pb_grpc.ExperimentServiceStub, key: Forger) -> None:
    """A marketer creates (twice: one experiment), reads, pages and ends an experiment."""
    created = await create(stub, key)
    assert created.status == pb.EXPERIMENT_STATUS_RUNNING
    assert (created.salt, created.conversion_window.seconds, created.campaign_id) == ("exp_button", 604800, "")
    assert created.created_at.ToDatetime(tzinfo=UTC) == T0 - timedelta(seconds=1)
    assert not created.HasField("ended_at")
    assert await create(stub, key) == created
    await create(stub, key, experiment_id="exp_other")
    got = await stub.GetExperiment(pb.GetExperimentRequest(experiment_id="exp_button"), metadata=bearer(key, READ))
    assert got.experiment == created
    first = await stub.ListExperiments(pb.ListExperimentsRequest(page_size=1), metadata=bearer(key, READ))
    assert [e.experiment_id for e in first.experiments] == ["exp_button"]
    rest = await stub.ListExperiments(
        pb.ListExperimentsRequest(page_size=1, page_token=first.next_page_token), metadata=bearer(key, READ)
    )
    assert ([e.experiment_id for e in rest.experiments], rest.next_page_token) == (["exp_other"], "")
    ended = await stub.EndExperiment(pb.EndExperimentRequest(experiment_id="exp_button"), metadata=bearer(key, WRITE))
    assert ended.experiment.status == pb.EXPERIMENT_STATUS_ENDED
    assert ended.experiment.HasField("ended_at")


async def test_assign_convert_and_read_results(stub: pb_grpc.ExperimentServiceStub, key: Forger) -> None:
    """A service assigns (first exposure once) and converts; the marketer reads the numbers."""
    await create(stub, key)
    rules = Experiment("exp_button", "exp_button", (Variant("control", 1), Variant("treatment", 1)), "control")
    users = [f"usr_{i:03d}" for i in range(40)]
    for user in users:
        request = pb.AssignVariantRequest(experiment_id="exp_button", user_id=user)
        first = await stub.AssignVariant(request, metadata=bearer(key, EVENTS))
        again = await stub.AssignVariant(request, metadata=bearer(key, EVENTS))
        assert (first.variant, first.first_exposure, first.holdout) == (assign(rules, user), True, False)
        assert (again.variant, again.first_exposure, again.assigned_at) == (first.variant, False, first.assigned_at)
        assert first.is_control == (first.variant == "control")
    converted = users[::3]
    for user in converted:
        request = pb.RecordConversionRequest(experiment_id="exp_button", user_id=user, occurred_at=at(T0))
        answer = await stub.RecordConversion(request, metadata=bearer(key, EVENTS))
        assert answer.outcome == pb.CONVERSION_OUTCOME_COUNTED
    stranger = pb.RecordConversionRequest(experiment_id="exp_button", user_id="usr_x", occurred_at=at(T0))
    answer = await stub.RecordConversion(stranger, metadata=bearer(key, EVENTS))
    assert answer.outcome == pb.CONVERSION_OUTCOME_NOT_EXPOSED

    counts = {
        name: VariantCounts(
            sum(assign(rules, u) == name for u in users), sum(assign(rules, u) == name for u in converted)
        )
        for name in ("control", "treatment")
    }
    report = await stub.GetExperimentResults(
        pb.GetExperimentResultsRequest(experiment_id="exp_button"), metadata=bearer(key, READ)
    )
    assert report.confidence == 0.95
    control, treatment = report.variants
    assert (control.variant, control.is_control, control.exposures, control.conversions) == (
        "control",
        True,
        counts["control"].exposures,
        counts["control"].conversions,
    )
    assert not control.HasField("lift")
    assert not control.HasField("p_value")
    assert control.rate == counts["control"].rate
    expected = compare(counts["control"], counts["treatment"])
    assert treatment.absolute_lift == expected.absolute_lift
    assert expected.absolute_lift_interval is not None
    assert (treatment.absolute_lift_ci_low, treatment.absolute_lift_ci_high) == (
        expected.absolute_lift_interval.low,
        expected.absolute_lift_interval.high,
    )
    assert treatment.p_value == expected.p_value
    assert treatment.lift == expected.relative_lift
    assert list(treatment.caveats) == [pb.CAVEAT_SMALL_SAMPLE]
    assert not report.srm_detected
    assert report.HasField("computed_at")


async def test_skip_exposure_and_ended_experiments(stub: pb_grpc.ExperimentServiceStub, key: Forger) -> None:
    """A look-up logs nothing; after the end newcomers get the control, unassigned."""
    await create(stub, key)
    look = pb.AssignVariantRequest(experiment_id="exp_button", user_id="usr_1", skip_exposure=True)
    assert not (await stub.AssignVariant(look, metadata=bearer(key, EVENTS))).first_exposure
    await stub.EndExperiment(pb.EndExperimentRequest(experiment_id="exp_button"), metadata=bearer(key, WRITE))
    newcomer = pb.AssignVariantRequest(experiment_id="exp_button", user_id="usr_2")
    answer = await stub.AssignVariant(newcomer, metadata=bearer(key, EVENTS))
    assert (answer.variant, answer.is_control, answer.first_exposure) == ("control", True, False)
    assert not answer.HasField("assigned_at")


async def test_without_token_is_unauthenticated(stub: pb_grpc.ExperimentServiceStub) -> None:
    """No bearer token → UNAUTHENTICATED."""
    code, _ = await status_of(stub.GetExperiment(pb.GetExperimentRequest(experiment_id="exp_button")))
    assert code is grpc.StatusCode.UNAUTHENTICATED


async def test_wrong_scope_is_permission_denied(stub: pb_grpc.ExperimentServiceStub, key: Forger) -> None:
    """Marketers cannot assign or convert, services cannot manage or read: SCOPE_MISSING."""
    cases = [
        (stub.CreateExperiment, pb.CreateExperimentRequest(experiment=experiment()), READ),
        (stub.CreateExperiment, pb.CreateExperimentRequest(experiment=experiment()), EVENTS),
        (stub.GetExperimentResults, pb.GetExperimentResultsRequest(experiment_id="exp_button"), EVENTS),
        (stub.AssignVariant, pb.AssignVariantRequest(experiment_id="exp_button", user_id="usr_1"), READ),
        (stub.RecordConversion, pb.RecordConversionRequest(experiment_id="exp_button", user_id="usr_1"), WRITE),
    ]
    for method, request, scope in cases:
        code, details = await status_of(method(request, metadata=bearer(key, scope)))
        assert (code, details["reason"]) == (grpc.StatusCode.PERMISSION_DENIED, "SCOPE_MISSING"), method


async def test_user_tokens_are_refused(stub: pb_grpc.ExperimentServiceStub, key: Forger) -> None:
    """A token whose subject is a user is refused whatever its scopes: USER_TOKEN_REFUSED."""
    await create(stub, key)
    cases = [
        (stub.GetExperiment, pb.GetExperimentRequest(experiment_id="exp_button"), READ),
        (stub.ListExperiments, pb.ListExperimentsRequest(), READ),
        (stub.GetExperimentResults, pb.GetExperimentResultsRequest(experiment_id="exp_button"), READ),
        (stub.AssignVariant, pb.AssignVariantRequest(experiment_id="exp_button", user_id="usr_me"), EVENTS),
        (stub.RecordConversion, pb.RecordConversionRequest(experiment_id="exp_button", user_id="usr_me"), EVENTS),
        (stub.CreateExperiment, pb.CreateExperimentRequest(experiment=experiment(experiment_id="exp_mine")), WRITE),
        (stub.EndExperiment, pb.EndExperimentRequest(experiment_id="exp_button"), WRITE),
    ]
    for method, request, scope in cases:
        user = bearer(key, scope, subject="usr_me")
        code, details = await status_of(method(request, metadata=user))
        assert (code, details["reason"]) == (grpc.StatusCode.PERMISSION_DENIED, "USER_TOKEN_REFUSED"), method


async def test_bad_definition_lists_field_violations(stub: pb_grpc.ExperimentServiceStub, key: Forger) -> None:
    """A malformed experiment → INVALID_ARGUMENT with a violation per field, in proto paths."""
    bad = experiment(
        experiment_id="",
        variants=[pb.ExperimentVariant(name="a", weight=1), pb.ExperimentVariant(name="a", weight=-1)],
        control="b",
        conversion_window=Duration(seconds=60),
    )
    code, details = await status_of(
        stub.CreateExperiment(pb.CreateExperimentRequest(experiment=bad), metadata=bearer(key, WRITE))
    )
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert set(details["violations"]) == {
        "experiment.experiment_id",
        "experiment.variants[1].name",
        "experiment.variants[1].weight",
        "experiment.control",
        "experiment.conversion_window",
    }


async def test_conflicts_and_missing_experiments(stub: pb_grpc.ExperimentServiceStub, key: Forger) -> None:
    """Another definition under a taken id → ALREADY_EXISTS; an unknown id → NOT_FOUND."""
    await create(stub, key)
    other = pb.CreateExperimentRequest(experiment=experiment(control="treatment"))
    code, details = await status_of(stub.CreateExperiment(other, metadata=bearer(key, WRITE)))
    assert (code, details["reason"]) == (grpc.StatusCode.ALREADY_EXISTS, "EXPERIMENT_EXISTS")
    missing = pb.AssignVariantRequest(experiment_id="exp_nope", user_id="usr_1")
    code, details = await status_of(stub.AssignVariant(missing, metadata=bearer(key, EVENTS)))
    assert (code, details["reason"]) == (grpc.StatusCode.NOT_FOUND, "EXPERIMENT_NOT_FOUND")


async def test_bad_requests_name_their_fields(stub: pb_grpc.ExperimentServiceStub, key: Forger) -> None:
    """No conversion time, a confidence out of range, a forged page token, no user id."""
    await create(stub, key)
    calls = [
        (
            stub.RecordConversion(
                pb.RecordConversionRequest(experiment_id="exp_button", user_id="usr_1"), metadata=bearer(key, EVENTS)
            ),
            ["occurred_at"],
        ),
        (
            stub.GetExperimentResults(
                pb.GetExperimentResultsRequest(experiment_id="exp_button", confidence=1.5), metadata=bearer(key, READ)
            ),
            ["confidence"],
        ),
        (
            stub.ListExperiments(pb.ListExperimentsRequest(page_token="bm90LWEtbGlzdA"), metadata=bearer(key, READ)),
            ["page_token"],
        ),
        (
            stub.AssignVariant(pb.AssignVariantRequest(experiment_id="exp_button"), metadata=bearer(key, EVENTS)),
            ["user_id"],
        ),
    ]
    for call, fields in calls:
        code, details = await status_of(call)
        assert (code, list(details["violations"])) == (grpc.StatusCode.INVALID_ARGUMENT, fields)
