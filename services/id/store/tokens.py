"""Repositories of authorization codes, refresh-token families and revoked access tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.id.domain.scopes import format_scopes, parse_scopes
from services.id.domain.tokens import RefreshToken, TokenFamily
from services.id.store.tables import authorization_codes, refresh_tokens, revoked_access_tokens, token_families


@dataclass(frozen=True)
class StoredCode:
    """An authorization code as stored (by hash)."""

    code_hash: str
    client_id: str
    user_id: str
    redirect_uri: str
    scopes: frozenset[str]
    code_challenge: str | None
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    family_id: str | None


async def add_code(conn: AsyncConnection, code: StoredCode) -> None:
    """Store a new authorization code."""
    await conn.execute(
        insert(authorization_codes).values(
            code_hash=code.code_hash,
            client_id=code.client_id,
            user_id=code.user_id,
            redirect_uri=code.redirect_uri,
            scopes=format_scopes(code.scopes),
            code_challenge=code.code_challenge,
            created_at=code.created_at,
            expires_at=code.expires_at,
        )
    )


async def get_code(conn: AsyncConnection, code_hash: str) -> StoredCode | None:
    """Return the code with ``code_hash``."""
    row = (await conn.execute(select(authorization_codes).where(authorization_codes.c.code_hash == code_hash))).first()
    if row is None:
        return None
    m = row._mapping
    return StoredCode(
        m["code_hash"],
        m["client_id"],
        m["user_id"],
        m["redirect_uri"],
        parse_scopes(m["scopes"]),
        m["code_challenge"],
        m["created_at"],
        m["expires_at"],
        m["used_at"],
        m["family_id"],
    )


async def mark_code_used(conn: AsyncConnection, code_hash: str, now: datetime, family_id: str | None) -> bool:
    """Spend the code; False if it was spent already (the guard makes it single-use under races)."""
    c = authorization_codes.c
    result = await conn.execute(
        update(authorization_codes)
        .where(c.code_hash == code_hash, c.used_at.is_(None))
        .values(used_at=now, family_id=family_id)
    )
    return result.rowcount == 1


def _family(row: Row[tuple[object, ...]]) -> TokenFamily:
    m = row._mapping
    return TokenFamily(m["id"], m["user_id"], m["client_id"], m["created_at"], m["revoked_at"], m["reason"])


async def add_family(conn: AsyncConnection, family: TokenFamily) -> None:
    """Store a new refresh-token family."""
    await conn.execute(
        insert(token_families).values(
            id=family.id, user_id=family.user_id, client_id=family.client_id, created_at=family.created_at, reason=""
        )
    )


async def get_family(conn: AsyncConnection, family_id: str) -> TokenFamily | None:
    """Return the family with ``family_id``."""
    row = (await conn.execute(select(token_families).where(token_families.c.id == family_id))).first()
    return _family(row) if row else None


async def revoke_family(conn: AsyncConnection, family_id: str, now: datetime, reason: str) -> bool:
    """Revoke a family and all its refresh tokens; False if it was revoked already."""
    f = token_families.c
    result = await conn.execute(
        update(token_families).where(f.id == family_id, f.revoked_at.is_(None)).values(revoked_at=now, reason=reason)
    )
    r = refresh_tokens.c
    await conn.execute(
        update(refresh_tokens).where(r.family_id == family_id, r.revoked_at.is_(None)).values(revoked_at=now)
    )
    return result.rowcount == 1


async def active_families(conn: AsyncConnection, user_id: str, client_id: str) -> list[TokenFamily]:
    """Return the unrevoked families of one user at one client."""
    f = token_families.c
    rows = await conn.execute(
        select(token_families).where(f.user_id == user_id, f.client_id == client_id, f.revoked_at.is_(None))
    )
    return [_family(r) for r in rows]


async def add_refresh(conn: AsyncConnection, token: RefreshToken) -> None:
    """Store a new refresh token (its hash)."""
    await conn.execute(
        insert(refresh_tokens).values(
            token_hash=token.token_hash,
            family_id=token.family_id,
            user_id=token.user_id,
            client_id=token.client_id,
            scopes=format_scopes(token.scopes),
            audience=" ".join(token.audience),
            issued_at=token.issued_at,
            expires_at=token.expires_at,
        )
    )


async def get_refresh(conn: AsyncConnection, token_hash: str) -> RefreshToken | None:
    """Return the refresh token with ``token_hash``."""
    row = (await conn.execute(select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash))).first()
    if row is None:
        return None
    m = row._mapping
    return RefreshToken(
        m["token_hash"],
        m["family_id"],
        m["user_id"],
        m["client_id"],
        parse_scopes(m["scopes"]),
        tuple(m["audience"].split()),
        m["issued_at"],
        m["expires_at"],
        m["used_at"],
        m["revoked_at"],
    )


async def mark_refresh_used(conn: AsyncConnection, token_hash: str, now: datetime, rotated_to: str) -> bool:
    """Spend a refresh token; False if a concurrent request spent it first (that is reuse)."""
    r = refresh_tokens.c
    result = await conn.execute(
        update(refresh_tokens)
        .where(r.token_hash == token_hash, r.used_at.is_(None))
        .values(used_at=now, rotated_to=rotated_to)
    )
    return result.rowcount == 1


async def revoke_access(conn: AsyncConnection, jti: str, subject: str, expires_at: datetime, now: datetime) -> bool:
    """Record a revoked access token; False when it was revoked already."""
    exists = (await conn.execute(select(revoked_access_tokens.c.jti).where(revoked_access_tokens.c.jti == jti))).first()
    if exists:
        return False
    await conn.execute(
        insert(revoked_access_tokens).values(jti=jti, subject=subject, expires_at=expires_at, revoked_at=now)
    )
    return True


async def is_access_revoked(conn: AsyncConnection, jti: str) -> bool:
    """Whether the access token ``jti`` was revoked."""
    row = (await conn.execute(select(revoked_access_tokens.c.jti).where(revoked_access_tokens.c.jti == jti))).first()
    return row is not None
