"""Rules are data: a shadow rule is recorded without effect, a broken file is refused as
a whole, and a rule change is re-scanned against recent content and can be applied.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from furima.tns.v1 import case_service_pb2, content_pb2, moderation_service_pb2, rule_service_pb2

from libs.pb import timestamp
from libs.rpc import make_channel
from tests.helpers import BOB, bearer, rpc_error, user_id
from tests.stack import Stack, running_tns
from tests.tns_helpers import LISTING, Tns, listing, moderate, service_token

RULES = """
version = "{version}"
[lists]
cards = ["ポケモンカード"]

[[rules]]
id = "cards.resale"
policy = "prohibited_item"
verdict = "BLOCK"
shadow = {shadow}
description = "A candidate rule, tried in shadow first."
when = {{ keywords = "cards" }}
"""


def _write(path: Path, version: str, *, shadow: bool) -> None:
    path.write_text(RULES.format(version=version, shadow=str(shadow).lower()), encoding="utf-8")


async def test_shadow_rule_then_reload_and_applied_rescan(stack: Stack, tns_database_url: str, tmp_path: Path) -> None:
    """Shadow: recorded but ALLOWed; after the reload an APPLY re-scan hides the listing and opens a case."""
    rules = tmp_path / "rules.toml"
    _write(rules, "t.1", shadow=True)
    admin = await service_token(stack, "tns.rules.admin tns.moderate tns.review")
    async with running_tns(stack, tns_database_url, rules_path=rules) as service, make_channel(service.address) as ch:
        tns = Tns(ch)
        content = listing(await user_id(stack, BOB), "ポケモンカード 引退品 まとめ", "状態良好です")
        first = await moderate(tns, admin, content)
        assert first.verdict == content_pb2.VERDICT_ALLOW
        assert [(r.rule_id, r.shadow) for r in first.shadow_reasons] == [("cards.resale", True)]
        assert first.ruleset_version == "t.1"

        _write(rules, "t.2", shadow=False)
        reloaded = await tns.rules.ReloadRules(rule_service_pb2.ReloadRulesRequest(), metadata=bearer(admin))
        assert (reloaded.changed, reloaded.rule_set.version) == (True, "t.2")
        since = timestamp(datetime.now(UTC) - timedelta(hours=1))
        started = await tns.rules.StartRescan(
            rule_service_pb2.StartRescanRequest(mode=rule_service_pb2.RESCAN_MODE_APPLY, since=since),
            metadata=bearer(admin),
        )
        await service.container.rescanner.wait()
        done = await tns.rules.GetRescan(
            rule_service_pb2.GetRescanRequest(rescan_id=started.rescan.rescan_id), metadata=bearer(admin)
        )
        assert done.rescan.status == rule_service_pb2.RESCAN_STATUS_DONE
        assert (done.rescan.scanned, done.rescan.changed) == (1, 1)
        assert (done.rescan.changes[0].before_verdict, done.rescan.changes[0].after_verdict) == ("ALLOW", "BLOCK")

        now = await tns.moderation.GetContent(
            moderation_service_pb2.GetContentRequest(kind=LISTING, content_id=content.content_id),
            metadata=bearer(admin),
        )
        assert now.status == content_pb2.CONTENT_STATUS_HIDDEN
        assert now.latest_decision.ruleset_version == "t.2"
        cases = await tns.cases.ListCases(case_service_pb2.ListCasesRequest(), metadata=bearer(admin))
        assert [c.content_id for c in cases.cases] == [content.content_id]
        # The reload also started a shadow re-scan by itself.
        audit = await tns.cases.ListAuditEntries(case_service_pb2.ListAuditEntriesRequest(), metadata=bearer(admin))
        starts = [(e.action, e.actor) for e in audit.entries if e.action == "rules.rescan_started"]
        assert ("rules.rescan_started", "system") in starts


async def test_invalid_rule_file_is_refused_and_changes_nothing(
    stack: Stack, tns_database_url: str, tmp_path: Path
) -> None:
    """A file with an unknown policy and verdict → INVALID_ARGUMENT naming both; the old rules stay in force."""
    rules = tmp_path / "rules.toml"
    _write(rules, "t.1", shadow=False)
    admin = await service_token(stack, "tns.rules.admin tns.moderate")
    async with running_tns(stack, tns_database_url, rules_path=rules) as service, make_channel(service.address) as ch:
        tns = Tns(ch)
        text = RULES.format(version="t.bad", shadow="false")
        rules.write_text(text.replace('"prohibited_item"', '"drugz"').replace('"BLOCK"', '"NUKE"'), encoding="utf-8")
        error = await rpc_error(tns.rules.ReloadRules(rule_service_pb2.ReloadRulesRequest(), metadata=bearer(admin)))
        assert error["code"] == grpc.StatusCode.INVALID_ARGUMENT
        assert {"rules[0].policy", "rules[0].verdict"} <= set(error["violations"])  # type: ignore[call-overload]
        info = await tns.rules.GetRuleSet(rule_service_pb2.GetRuleSetRequest(), metadata=bearer(admin))
        assert info.rule_set.version == "t.1"
        blocked = await moderate(tns, admin, listing(await user_id(stack, BOB), "ポケモンカード", "新品"))
        assert blocked.verdict == content_pb2.VERDICT_BLOCK


VELOCITY_RULES = """
version = "v.1"

[[rules]]
id = "velocity.burst"
policy = "prohibited_item"
verdict = "REVIEW"
applies_to = ["listing"]
description = "More than two listings an hour."
when = { velocity = { kind = "listing", window = "1h", more_than = 2 } }
"""


async def test_velocity_counts_the_authors_recent_listings(stack: Stack, tns_database_url: str, tmp_path: Path) -> None:
    """The third listing within the hour sends the author to review; another author is unaffected."""
    rules = tmp_path / "rules.toml"
    rules.write_text(VELOCITY_RULES, encoding="utf-8")
    token = await service_token(stack, "tns.moderate")
    async with running_tns(stack, tns_database_url, rules_path=rules) as service, make_channel(service.address) as ch:
        tns = Tns(ch)
        bob = await user_id(stack, BOB)
        verdicts = [(await moderate(tns, token, listing(bob, f"本 {i}"))).verdict for i in range(3)]
        assert verdicts == [content_pb2.VERDICT_ALLOW, content_pb2.VERDICT_ALLOW, content_pb2.VERDICT_REVIEW]
        other = await moderate(tns, token, listing("usr_someone_else", "本"))
        assert other.verdict == content_pb2.VERDICT_ALLOW
