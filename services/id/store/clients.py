"""The clients repository."""

from __future__ import annotations

import json

from sqlalchemy import Row, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.errors import AlreadyExists
from services.id.domain.clients import Client, ClientKind, GrantType
from services.id.domain.scopes import format_scopes, parse_scopes
from services.id.store.tables import clients


def _client(row: Row[tuple[object, ...]]) -> Client:
    m = row._mapping
    return Client(
        client_id=m["client_id"],
        name=m["name"],
        kind=ClientKind(m["kind"]),
        confidential=bool(m["confidential"]),
        secret_hash=m["secret_hash"],
        allowed_scopes=parse_scopes(m["allowed_scopes"]),
        redirect_uris=tuple(json.loads(m["redirect_uris"])),
        grant_types=frozenset(GrantType(g) for g in m["grant_types"].split()),
        created_at=m["created_at"],
    )


async def add(conn: AsyncConnection, client: Client) -> None:
    """Insert a client; AlreadyExists(CLIENT_EXISTS) when the id is taken."""
    try:
        async with conn.begin_nested():
            await conn.execute(
                insert(clients).values(
                    client_id=client.client_id,
                    name=client.name,
                    kind=client.kind.value,
                    confidential=client.confidential,
                    secret_hash=client.secret_hash,
                    allowed_scopes=format_scopes(client.allowed_scopes),
                    redirect_uris=json.dumps(list(client.redirect_uris)),
                    grant_types=" ".join(sorted(g.value for g in client.grant_types)),
                    created_at=client.created_at,
                )
            )
    except IntegrityError as exc:
        raise AlreadyExists(f"client {client.client_id!r} exists", reason="CLIENT_EXISTS") from exc


async def get(conn: AsyncConnection, client_id: str) -> Client | None:
    """Return the client with ``client_id``."""
    row = (await conn.execute(select(clients).where(clients.c.client_id == client_id))).first()
    return _client(row) if row else None


async def page(conn: AsyncConnection, after: str, limit: int) -> list[Client]:
    """Clients ordered by id, after the cursor ``after``."""
    rows = await conn.execute(
        select(clients).where(clients.c.client_id > after).order_by(clients.c.client_id).limit(limit)
    )
    return [_client(r) for r in rows]


async def set_allowed_scopes(conn: AsyncConnection, client_id: str, scopes: frozenset[str]) -> None:
    """Replace what the client may request (tokens already issued keep their scopes)."""
    await conn.execute(
        update(clients).where(clients.c.client_id == client_id).values(allowed_scopes=format_scopes(scopes))
    )
