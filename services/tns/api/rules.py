"""RuleService servicer."""

from __future__ import annotations

from datetime import UTC

from furima.tns.v1 import rule_service_pb2 as pb
from furima.tns.v1 import rule_service_pb2_grpc as pb_grpc

from libs.auth import current_principal
from libs.errors import FieldViolation, InvalidArgument, Violations
from libs.pb import ts
from services.tns.domain import audit as who
from services.tns.service.rescan import APPLY, SHADOW, Rescanner
from services.tns.service.rulebook import Engine, RuleBook
from services.tns.store.rescans import Rescan

RULE_SERVICE = pb.DESCRIPTOR.services_by_name["RuleService"]
register_rules = pb_grpc.add_RuleServiceServicer_to_server

_MODE = {pb.RESCAN_MODE_SHADOW: SHADOW, pb.RESCAN_MODE_APPLY: APPLY}
_MODE_PB = {v: k for k, v in _MODE.items()}
_STATUS_PB = {"running": pb.RESCAN_STATUS_RUNNING, "done": pb.RESCAN_STATUS_DONE, "failed": pb.RESCAN_STATUS_FAILED}


def rule_set_pb(engine: Engine) -> pb.RuleSetInfo:
    """The rule set in force, as a message."""
    return pb.RuleSetInfo(
        version=engine.rules.version,
        digest=engine.rules.digest,
        rules=[
            pb.RuleSummary(
                rule_id=rule.id,
                policy=rule.policy,
                verdict=rule.verdict.name,
                shadow=rule.shadow,
                description=rule.description,
            )
            for rule in engine.rules.rules
        ],
        loaded_at=ts(engine.loaded_at),
        model_version=engine.model.version,
    )


def rescan_pb(job: Rescan) -> pb.Rescan:
    """A re-scan job as a message."""
    return pb.Rescan(
        rescan_id=job.rescan_id,
        mode=_MODE_PB[job.mode],
        status=_STATUS_PB[job.status],
        ruleset_version=job.ruleset_version,
        scanned=job.scanned,
        changed=job.changed,
        changes=[pb.RescanChange(**change) for change in job.changes],
        started_at=ts(job.started_at),
        finished_at=ts(job.finished_at),
        error=job.error,
    )


class RuleServicer(pb_grpc.RuleServiceServicer):
    """The rule set in force, reloads and re-scans."""

    def __init__(self, book: RuleBook, rescanner: Rescanner) -> None:
        self._book = book
        self._rescanner = rescanner

    async def GetRuleSet(self, request: pb.GetRuleSetRequest, context: object) -> pb.GetRuleSetResponse:
        """The rules in force."""
        return pb.GetRuleSetResponse(rule_set=rule_set_pb(self._book.current))

    async def ReloadRules(self, request: pb.ReloadRulesRequest, context: object) -> pb.ReloadRulesResponse:
        """Re-read the rule file; an invalid file is refused with every problem."""
        changed = self._book.reload()
        return pb.ReloadRulesResponse(rule_set=rule_set_pb(self._book.current), changed=changed)

    async def StartRescan(self, request: pb.StartRescanRequest, context: object) -> pb.StartRescanResponse:
        """Re-evaluate content decided since a time."""
        problems = Violations()
        mode = _MODE.get(request.mode)  # type: ignore[call-overload]
        if mode is None:
            problems.add("mode", "must be SHADOW or APPLY")
        if not request.HasField("since"):
            problems.add("since", "is required")
        problems.raise_if_any()
        assert mode is not None  # raise_if_any refused a missing one
        since = request.since.ToDatetime(tzinfo=UTC)
        try:
            job = await self._rescanner.start(mode, since, who.service(current_principal().subject))
        except InvalidArgument as exc:
            field = "since" if exc.reason == "INVALID_SINCE" else "mode"
            raise InvalidArgument(exc.message, [FieldViolation(field, exc.message)]) from exc
        return pb.StartRescanResponse(rescan=rescan_pb(job))

    async def GetRescan(self, request: pb.GetRescanRequest, context: object) -> pb.GetRescanResponse:
        """A re-scan's progress or outcome."""
        problems = Violations()
        problems.require(request.rescan_id, "rescan_id")
        problems.raise_if_any()
        return pb.GetRescanResponse(rescan=rescan_pb(await self._rescanner.get(request.rescan_id)))
