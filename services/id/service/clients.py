"""Client registry use cases."""

from __future__ import annotations

from libs.errors import NotFound, Violations
from libs.ids import new_ulid
from services.id.domain import audit
from services.id.domain.clients import Client, ClientKind, GrantType, hash_secret, validate_registration
from services.id.domain.scopes import format_scopes
from services.id.domain.tokens import new_opaque_token
from services.id.service._runtime import Runtime, record
from services.id.store import clients as client_repo


class ClientService:
    """Registers and reads OAuth clients."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    async def register_client(
        self,
        *,
        client_id: str,
        name: str,
        kind: ClientKind | None,
        confidential: bool,
        allowed_scopes: frozenset[str],
        redirect_uris: list[str],
        grant_types: list[str],
        actor: str,
        client_secret: str | None = None,
    ) -> tuple[Client, str]:
        """Register a client; return it and its secret (empty for a public client).

        The secret is stored hashed and never shown again. ``client_secret`` lets the dev
        bootstrap re-register with a secret it kept.
        """
        violations = Violations()
        validate_registration(
            violations,
            client_id=client_id,
            name=name,
            kind=kind,
            confidential=confidential,
            allowed_scopes=allowed_scopes,
            redirect_uris=redirect_uris,
            grant_types=grant_types,
        )
        violations.raise_if_any("the client registration has invalid fields")
        assert kind is not None
        now = self._rt.clock.now()
        secret = (client_secret or new_opaque_token()) if confidential else ""
        client = Client(
            client_id=client_id or new_ulid("c-").lower(),
            name=name.strip(),
            kind=kind,
            confidential=confidential,
            secret_hash=hash_secret(secret) if secret else None,
            allowed_scopes=allowed_scopes,
            redirect_uris=tuple(redirect_uris),
            grant_types=frozenset(GrantType(g) for g in grant_types),
            created_at=now,
        )
        async with self._rt.db.transaction() as tx:
            await client_repo.add(tx.conn, client)
            await record(
                tx,
                audit.event(
                    audit.CLIENT_REGISTERED,
                    client.client_id,
                    now,
                    client_id=client.client_id,
                    actor=actor,
                    details={"kind": kind.value, "scope": format_scopes(allowed_scopes)},
                ),
            )
        return client, secret

    async def get_client(self, client_id: str) -> Client:
        """Return the client, or NOT_FOUND."""
        async with self._rt.db.read() as conn:
            client = await client_repo.get(conn, client_id)
        if client is None:
            raise NotFound(f"client {client_id!r} not found", reason="CLIENT_NOT_FOUND")
        return client

    async def list_clients(self, *, page_size: int, page_token: str = "") -> tuple[list[Client], str]:
        """Clients by id; returns ``(page, next_page_token)``."""
        async with self._rt.db.read() as conn:
            items = await client_repo.page(conn, page_token, page_size + 1)
        more = len(items) > page_size
        items = items[:page_size]
        return items, (items[-1].client_id if more else "")
