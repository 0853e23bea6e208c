"""The scope catalogue and audiences, and how scope strings are parsed and compared."""

from __future__ import annotations

from collections.abc import Iterable

# Every scope any furima client may be granted, with what it allows. The one list.
CATALOGUE: dict[str, str] = {
    "profile": "read the signed-in user's own record",
    "id.authorize": "ask a user's consent for a client and obtain an authorization code",
    "id.consents": "list and revoke the signed-in user's consents",
    "id.users.read": "read any user record",
    "id.users.admin": "suspend and reinstate users",
    "id.clients.admin": "register and read OAuth clients",
    "id.keys.admin": "rotate and list signing keys",
    "id.audit.read": "read the security audit trail",
    "id.tokens.introspect": "introspect tokens (RFC 7662)",
    "events.read": "stream a service's domain events",
    "testing.echo": "call the testing echo service",
    "payments.read": "read payments and wallets",
    "payments.write": "create payments and refunds",
    "payments.balance.read": "read a wallet balance",
    "payments.ledger.admin": "verify the payments ledger and reconcile it with the bank",
    "payments.review": "approve or reject payments held for risk review",
    "payments.credit.admin": "set users' pay-later credit limits",
    "tns.moderate": "submit content for moderation",
    "tns.review": "review moderation cases",
    "tns.report": "report content or users",
    "tns.appeal": "appeal an enforcement on one's own content and read one's own standing",
    "tns.risk": "assess the fraud risk of a transaction",
    "tns.standing.read": "read any user's standing (may they list, message, pay)",
    "tns.rules.admin": "reload moderation rules and run re-scans",
    "marketing.read": "read campaigns and segments",
    "marketing.write": "manage campaigns and segments",
    "marketing.events.write": "record user events for marketing",
}

ALL_SCOPES: frozenset[str] = frozenset(CATALOGUE)

# What a user can delegate to an app: their own data and their own actions. Everything
# else (reading other users, administration, streams, money movement) is for services.
USER_SCOPES: frozenset[str] = frozenset(
    {"profile", "payments.read", "payments.balance.read", "tns.report", "tns.appeal", "marketing.read", "testing.echo"}
)
# furima's own apps also act on the user's account itself: consent to others, manage it.
FIRST_PARTY_SCOPES: frozenset[str] = USER_SCOPES | {"id.authorize", "id.consents"}

# The resource servers a token can be addressed to ("aud").
AUDIENCES: tuple[str, ...] = ("furima.id", "furima.payments", "furima.tns", "furima.marketing", "furima.testing")


def parse_scopes(value: str) -> frozenset[str]:
    """Return the set of scopes in a space-separated scope string (empty string → empty set)."""
    return frozenset(part for part in value.split(" ") if part)


def format_scopes(scopes: Iterable[str]) -> str:
    """Return a space-separated scope string in a stable (sorted) order."""
    return " ".join(sorted(set(scopes)))


def unknown_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """Return the scopes that are not in the catalogue."""
    return frozenset(scopes) - ALL_SCOPES


def narrow(requested: frozenset[str], allowed: frozenset[str]) -> frozenset[str] | None:
    """Return ``requested`` if it is a subset of ``allowed`` (empty request → all allowed), else None."""
    if not requested:
        return allowed
    return requested if requested <= allowed else None


def resolve_audience(requested: Iterable[str], allowed: Iterable[str] = AUDIENCES) -> tuple[str, ...] | None:
    """Return the token's audience list: the requested subset of ``allowed`` (empty → all).

    None when something outside ``allowed`` was asked for.
    """
    wanted = [a for a in requested if a]
    allowed_list = list(allowed)
    if not wanted:
        return tuple(allowed_list)
    if not set(wanted) <= set(allowed_list):
        return None
    # Keep the canonical order so equal requests give equal tokens.
    return tuple(a for a in allowed_list if a in set(wanted))
