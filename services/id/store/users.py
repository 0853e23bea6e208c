"""The users repository."""

from __future__ import annotations

from sqlalchemy import Row, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.errors import AlreadyExists
from services.id.domain.users import User, UserStatus
from services.id.store.tables import users


def _user(row: Row[tuple[object, ...]]) -> User:
    m = row._mapping
    return User(
        id=m["id"],
        email=m["email"],
        password_hash=m["password_hash"],
        display_name=m["display_name"],
        region=m["region"],
        status=UserStatus(m["status"]),
        created_at=m["created_at"],
        suspended_at=m["suspended_at"],
        suspension_reason=m["suspension_reason"],
    )


async def add(conn: AsyncConnection, user: User) -> None:
    """Insert a new user; AlreadyExists(EMAIL_TAKEN) when the e-mail is registered."""
    try:
        # A savepoint keeps the outer transaction usable after the unique violation.
        async with conn.begin_nested():
            await conn.execute(
                insert(users).values(
                    id=user.id,
                    email=user.email,
                    password_hash=user.password_hash,
                    display_name=user.display_name,
                    region=user.region,
                    status=user.status.value,
                    created_at=user.created_at,
                    suspended_at=user.suspended_at,
                    suspension_reason=user.suspension_reason,
                )
            )
    except IntegrityError as exc:
        raise AlreadyExists("the e-mail address is already registered", reason="EMAIL_TAKEN") from exc


async def get(conn: AsyncConnection, user_id: str) -> User | None:
    """Return the user with ``user_id``."""
    row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
    return _user(row) if row else None


async def by_email(conn: AsyncConnection, email: str) -> User | None:
    """Return the user with the (normalised) ``email``."""
    row = (await conn.execute(select(users).where(users.c.email == email))).first()
    return _user(row) if row else None


async def save_status(conn: AsyncConnection, user: User) -> None:
    """Persist the user's status fields."""
    await conn.execute(
        update(users)
        .where(users.c.id == user.id)
        .values(status=user.status.value, suspended_at=user.suspended_at, suspension_reason=user.suspension_reason)
    )


async def save_password_hash(conn: AsyncConnection, user_id: str, password_hash: str) -> None:
    """Replace the stored password hash (rehash with new parameters)."""
    await conn.execute(update(users).where(users.c.id == user_id).values(password_hash=password_hash))
