"""What TnS knows of users from the ID service's event stream (``known_users``).

Every write is one upsert, so an event for a user TnS has not heard of yet (the feed
started late, or the sign-up came from before the cursor) still lands.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from services.tns.store._sql import upsert
from services.tns.store.tables import known_users


async def record_sign_up(conn: AsyncConnection, user_id: str, region: str, signed_up_at: datetime) -> None:
    """Remember when and where a user signed up (keeping what is known of a suspension)."""
    row = {"user_id": user_id, "signed_up_at": signed_up_at, "region": region, "suspended": False}
    await upsert(conn, known_users, [row], keys=["user_id"], update=["signed_up_at", "region"])


async def set_suspended(conn: AsyncConnection, user_id: str, suspended: bool) -> None:
    """Record that the ID service suspended (True) or reinstated (False) a user."""
    row = {"user_id": user_id, "signed_up_at": None, "region": "", "suspended": suspended}
    await upsert(conn, known_users, [row], keys=["user_id"], update=["suspended"])
