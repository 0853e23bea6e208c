"""Ending sessions: revoking a refresh-token family, with its event and audit record."""

from __future__ import annotations

from libs.storage import Transaction
from services.id.domain import audit
from services.id.domain.tokens import TokenFamily
from services.id.service._events import family_revoked
from services.id.service._runtime import Runtime, record
from services.id.store import tokens as token_repo


async def revoke_family(
    rt: Runtime, tx: Transaction, family: TokenFamily, *, reason: str, actor: str, audit_type: str = audit.TOKEN_REVOKED
) -> bool:
    """Revoke every refresh token of ``family`` and announce it.

    Verifiers then deny the session's access tokens by ``sid``. Returns False, and emits
    nothing, when it was revoked already.
    """
    now = rt.clock.now()
    if not await token_repo.revoke_family(tx.conn, family.id, now, reason):
        return False
    await rt.outbox.append(tx, family.user_id, family_revoked(family.id, family.user_id, family.client_id, reason, now))
    await record(
        tx,
        audit.event(
            audit_type,
            family.user_id,
            now,
            client_id=family.client_id,
            actor=actor,
            details={"session": family.id, "reason": reason},
        ),
    )
    return True
