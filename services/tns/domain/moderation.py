"""A moderation decision and what it does to the content."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from libs.errors import Violations
from services.tns.domain.content import Content, ContentKind, Verdict

STANDING_POLICY = "standing"
"""The policy of the reason given when the author's standing forbids the content."""
STANDING_RULE = "standing.restricted"


class ContentStatus(StrEnum):
    """Whether content may be shown."""

    VISIBLE = "visible"
    HIDDEN = "hidden"  # not shown until the author edits it (or a rescan clears it)
    REMOVED = "removed"  # taken down; only an appeal or an agent brings it back


def status_after(verdict: Verdict) -> ContentStatus:
    """What a verdict does to the content it is about."""
    if verdict is Verdict.BLOCK:
        return ContentStatus.REMOVED
    if verdict is Verdict.WARN:
        return ContentStatus.HIDDEN
    return ContentStatus.VISIBLE  # ALLOW, and REVIEW: published while a human looks


@dataclass(frozen=True, slots=True)
class Reason:
    """One matched rule, as recorded with the decision."""

    policy: str
    rule_id: str
    verdict: Verdict
    evidence: tuple[str, ...] = ()
    shadow: bool = False


@dataclass(frozen=True)
class Decision:
    """The outcome of moderating one piece of content."""

    decision_id: str
    content: Content
    verdict: Verdict
    reasons: tuple[Reason, ...]
    shadow_reasons: tuple[Reason, ...]
    scores: Mapping[str, float]
    thresholds: Mapping[str, float]
    ruleset_version: str
    model_version: str
    decided_at: datetime
    status: ContentStatus
    """The content's status after the decision (removed content stays removed)."""
    case_id: str | None = None

    @property
    def policy(self) -> str:
        """The policy of the strongest reason ("" when allowed)."""
        return self.reasons[0].policy if self.reasons else ""

    def strongest(self, verdict: Verdict) -> tuple[Reason, ...]:
        """The reasons that carry ``verdict``."""
        return tuple(r for r in self.reasons if r.verdict is verdict)


MAX_TITLE = 200
MAX_LISTING_BODY = 10_000
MAX_MESSAGE_BODY = 5_000


def validate_content(content: Content, prefix: str = "content") -> None:
    """Raise `InvalidArgument` with every problem of ``content`` (paths under ``prefix``)."""
    problems = Violations()
    problems.require(content.content_id, f"{prefix}.content_id")
    if len(content.content_id) > 100:
        problems.add(f"{prefix}.content_id", "must be at most 100 characters")
    if not content.author_id.startswith("usr_") or len(content.author_id) > 40:
        problems.add(f"{prefix}.author_id", "must be a user id (usr_...)")
    if content.kind is ContentKind.LISTING:
        problems.require(content.title.strip(), f"{prefix}.title", "a listing needs a title")
        if len(content.title) > MAX_TITLE:
            problems.add(f"{prefix}.title", f"must be at most {MAX_TITLE} characters")
        if len(content.body) > MAX_LISTING_BODY:
            problems.add(f"{prefix}.body", f"must be at most {MAX_LISTING_BODY} characters")
        if len(content.category) > 64:
            problems.add(f"{prefix}.category", "must be at most 64 characters")
        if content.price is None or content.price <= 0:
            problems.add(f"{prefix}.price.amount", "a listing needs a positive price")
        if len(content.currency) != 3 or not content.currency.isupper() or not content.currency.isalpha():
            problems.add(f"{prefix}.price.currency", "must be an ISO 4217 code such as JPY")
    else:
        problems.require(content.body.strip(), f"{prefix}.body", f"a {content.kind.value} needs a body")
        if len(content.body) > MAX_MESSAGE_BODY:
            problems.add(f"{prefix}.body", f"must be at most {MAX_MESSAGE_BODY} characters")
        for name, value in (("title", content.title), ("category", content.category)):
            if value:
                problems.add(f"{prefix}.{name}", "only listings have one")
        if content.price is not None:
            problems.add(f"{prefix}.price", "only listings have one")
    problems.raise_if_any("the content is invalid")
