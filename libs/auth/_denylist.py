"""Tokens that must stop working before they expire.

Fed by the ID service's event stream (suspensions, revocations, withdrawn consents), so
every service refuses a suspended user's tokens within the stream's latency instead of
at token expiry. Entries about single tokens are dropped once those tokens expire.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from furima.events.v1 import events_pb2
from furima.id.v1 import events_pb2 as id_events

from libs.auth._principal import Principal
from libs.clock import epoch_seconds

_UserSuspended = id_events.UserSuspended.DESCRIPTOR.full_name
_UserReinstated = id_events.UserReinstated.DESCRIPTOR.full_name
_TokenRevoked = id_events.TokenRevoked.DESCRIPTOR.full_name
_TokenFamilyRevoked = id_events.TokenFamilyRevoked.DESCRIPTOR.full_name
_ConsentRevoked = id_events.ConsentRevoked.DESCRIPTOR.full_name

# Verifiers accept a token a few seconds past ``exp``; keep its revocation longer than that.
_LEEWAY_MARGIN = 60

# Event types the deny-list needs, in the order of the ID stream.
DENYLIST_EVENT_TYPES = [_UserSuspended, _UserReinstated, _TokenRevoked, _TokenFamilyRevoked, _ConsentRevoked]


@dataclass
class DenyList:
    """In-memory deny rules, checked on every authenticated call (dictionary lookups only).

    ``max_token_ttl`` bounds how long a rule about already-issued tokens must be kept.
    """

    max_token_ttl: float = 3600.0
    suspended: set[str] = field(default_factory=set)
    tokens: dict[str, float] = field(default_factory=dict)  # jti -> expiry (epoch s)
    sessions: dict[str, float] = field(default_factory=dict)  # sid -> keep until
    grants: dict[tuple[str, str], float] = field(default_factory=dict)  # (sub, client) -> revoked at
    position: int = 0
    _pruned_at: float = 0.0

    def reason_denied(self, principal: Principal) -> str | None:
        """Why the principal's token must be refused, or None."""
        subject = principal.subject
        if subject in self.suspended:
            return "the account is suspended"
        if principal.token_id in self.tokens:
            return "the token was revoked"
        if principal.session_id is not None and principal.session_id in self.sessions:
            return "the session was revoked"
        if self.grants:
            revoked_at = self.grants.get((subject, principal.client_id))
            # ``iat`` has whole seconds: a token from the second of the withdrawal may be
            # newer than it, so only earlier seconds are denied here. Tokens of the
            # client's sessions are denied by their ``sid`` (TokenFamilyRevoked) anyway.
            if revoked_at is not None and principal.issued_at.timestamp() < int(revoked_at):
                return "the user withdrew this client's access"
        return None

    def apply(self, event: events_pb2.Event) -> None:
        """Update the rules from one ID event (unknown types are ignored)."""
        self.position = max(self.position, event.sequence)
        payload = event.payload
        keep_until = epoch_seconds() + self.max_token_ttl
        if payload.TypeName() == _UserSuspended:
            suspended = id_events.UserSuspended()
            payload.Unpack(suspended)
            self.suspended.add(suspended.user_id)
        elif payload.TypeName() == _UserReinstated:
            reinstated = id_events.UserReinstated()
            payload.Unpack(reinstated)
            self.suspended.discard(reinstated.user_id)
        elif payload.TypeName() == _TokenRevoked:
            revoked = id_events.TokenRevoked()
            payload.Unpack(revoked)
            # Kept past exp by the verifiers' leeway margin, so a revoked token is never
            # accepted in the seconds a verifier still tolerates after expiry.
            self.tokens[revoked.jti] = (
                (revoked.expires_at.seconds + _LEEWAY_MARGIN) if revoked.expires_at.seconds else keep_until
            )
        elif payload.TypeName() == _TokenFamilyRevoked:
            family = id_events.TokenFamilyRevoked()
            payload.Unpack(family)
            self.sessions[family.family_id] = keep_until
        elif payload.TypeName() == _ConsentRevoked:
            consent = id_events.ConsentRevoked()
            payload.Unpack(consent)
            self.grants[(consent.user_id, consent.client_id)] = consent.revoked_at.ToMicroseconds() / 1e6
        now = epoch_seconds()
        # Pruning walks every table: at most once a second, so replaying a long stream
        # at start-up stays linear.
        if now - self._pruned_at >= 1.0:
            self.prune(now)

    def prune(self, now: float | None = None) -> None:
        """Forget rules about tokens that have expired anyway."""
        now = epoch_seconds() if now is None else now
        self._pruned_at = now
        for table in (self.tokens, self.sessions):
            for key in [k for k, until in table.items() if until < now]:
                del table[key]
        horizon = now - self.max_token_ttl
        for grant in [g for g, at in self.grants.items() if at < horizon]:
            del self.grants[grant]
