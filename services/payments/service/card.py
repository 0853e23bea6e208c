"""The external card provider behind REMAINDER_METHOD_CARD, and its in-process simulation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from libs.errors import FailedPrecondition
from libs.ids import new_ulid


class CardDeclined(FailedPrecondition):
    """The card provider refused the authorization; nothing was held."""

    default_reason = "CARD_DECLINED"


class CardProvider(Protocol):
    """Authorizes, captures, releases and refunds card payments."""

    async def authorize(self, token: str, amount: int, currency: str, reference: str) -> str:
        """An authorization id; CardDeclined when the card is refused."""
        ...

    async def settle(self, authorization: str, captured: int, released: int, refunded: int) -> None:
        """Tell the provider what became of an authorization (in any combination)."""
        ...


@dataclass
class CardAuthorization:
    """What the simulated provider knows of one authorization."""

    token: str
    amount: int
    currency: str
    reference: str
    captured: int = 0
    released: int = 0
    refunded: int = 0


@dataclass
class SimulatedCardProvider:
    """A card network stand-in: tokens ``tok_...`` authorize, ``tok_declined...`` and
    ``tok_insufficient...`` are refused, anything else is not a token.
    """

    authorizations: dict[str, CardAuthorization] = field(default_factory=dict)

    async def authorize(self, token: str, amount: int, currency: str, reference: str) -> str:
        """Authorize ``amount`` on the card."""
        if not token.startswith("tok_"):
            raise CardDeclined("the card token is not valid", metadata={"decline_code": "invalid_token"})
        for code in ("declined", "insufficient"):
            if token.startswith(f"tok_{code}"):
                raise CardDeclined("the card was declined", metadata={"decline_code": code})
        authorization = new_ulid("cau_")
        self.authorizations[authorization] = CardAuthorization(token, amount, currency, reference)
        return authorization

    async def settle(self, authorization: str, captured: int, released: int, refunded: int) -> None:
        """Record the movement (the simulation keeps what a statement would show)."""
        known = self.authorizations.get(authorization)
        if known is None:
            # Authorized by an earlier process: the real provider remembers it.
            return
        known.captured += captured
        known.released += released
        known.refunded += refunded
