"""What is moderated and what moderation says about it: the shared vocabulary of the
rule engine, the text classifier and the services around them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Protocol

# The policies content can violate. Rules, model labels, strikes and review queues all
# speak these names; the contract carries them as strings.
POLICIES: tuple[str, ...] = (
    "prohibited_item",  # illegal or banned goods: drugs, weapons, stolen goods, live animals...
    "counterfeit",  # fake brand goods, replicas
    "offensive",  # insults, harassment, hate
    "offplatform_payment",  # bank transfer, cash, payment methods the marketplace does not offer
    "offplatform_contact",  # phone numbers, e-mail, messenger ids, outside links
    "expired_food",  # food past or close to its expiry date
)


VELOCITY_COUNT_LIMIT = 1000
"""Velocity counts saturate here: a rule may compare with at most this minus one."""


class ContentKind(StrEnum):
    """Where the text comes from."""

    LISTING = "listing"
    COMMENT = "comment"
    MESSAGE = "message"


class Verdict(IntEnum):
    """A moderation decision; a larger value is stronger and wins."""

    ALLOW = 0
    WARN = 1  # not published; the author may edit and resubmit
    REVIEW = 2  # published, queued for a human
    BLOCK = 3  # not published


@dataclass(frozen=True, slots=True)
class Content:
    """One piece of content submitted for moderation."""

    kind: ContentKind
    content_id: str
    author_id: str
    title: str = ""
    body: str = ""
    category: str = ""
    price: int | None = None
    """Listing price in minor units of ``currency`` (JPY: yen); None when not a listing."""
    currency: str = "JPY"

    @property
    def text(self) -> str:
        """Every text field, as one string (title first)."""
        return f"{self.title}\n{self.body}" if self.title else self.body


@dataclass(frozen=True, slots=True)
class AuthorContext:
    """What is known about the author when their content is moderated."""

    account_age_days: float | None = None
    """Days since sign-up; None when unknown."""
    restricted: bool = False
    """Under a time-bound restriction (may not list or message)."""
    labels: frozenset[str] = frozenset()
    """Active user labels (e.g. ``"new_seller"``, ``"trusted"``)."""
    strike_points: float = 0.0
    """Weighted strikes within the enforcement window."""
    recent: Mapping[tuple[ContentKind, int], int] = field(default_factory=dict)
    """Velocity: ``(kind, window in seconds) -> how many items of that kind the author
    submitted in that window``, this one included. Holds the windows the rule set asks
    for (`velocity_windows`)."""


class TextClassifier(Protocol):
    """A trained text model: per-policy probabilities for a text."""

    @property
    def version(self) -> str:
        """Identifies the artifact (recorded with every decision)."""
        ...

    @property
    def thresholds(self) -> Mapping[str, float]:
        """Per policy, the score at or above which the model flags the text."""
        ...

    def scores(self, text: str) -> dict[str, float]:
        """Per policy in `POLICIES`, the probability in [0, 1] that ``text`` violates it."""
        ...
