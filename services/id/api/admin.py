"""ClientService, ConsentService, KeyService and AuditService servicers."""

from __future__ import annotations

from furima.id.v1 import audit_service_pb2 as audit_pb2
from furima.id.v1 import audit_service_pb2_grpc as audit_grpc
from furima.id.v1 import client_service_pb2 as client_pb2
from furima.id.v1 import client_service_pb2_grpc as client_grpc
from furima.id.v1 import consent_service_pb2 as consent_pb2
from furima.id.v1 import consent_service_pb2_grpc as consent_grpc
from furima.id.v1 import key_service_pb2 as key_pb2
from furima.id.v1 import key_service_pb2_grpc as key_grpc

from libs.auth import current_principal
from libs.clock import Clock
from libs.errors import Violations
from libs.pb import page_size
from services.id.api._convert import CLIENT_KIND_FROM_PB, Context, audit_pb, client_pb, consent_pb, key_pb
from services.id.service.audit import AuditService
from services.id.service.clients import ClientService
from services.id.service.consents import ConsentService
from services.id.service.keyring import KeyRing


class ClientServicer(client_grpc.ClientServiceServicer):
    """The registry of OAuth clients."""

    def __init__(self, clients: ClientService) -> None:
        self._clients = clients

    async def RegisterClient(
        self, request: client_pb2.RegisterClientRequest, context: Context
    ) -> client_pb2.RegisterClientResponse:
        """Register a client; the secret is in this response only."""
        client, secret = await self._clients.register_client(
            client_id=request.client_id,
            name=request.name,
            kind=CLIENT_KIND_FROM_PB.get(request.kind),
            confidential=request.confidential,
            allowed_scopes=frozenset(request.allowed_scopes),
            redirect_uris=list(request.redirect_uris),
            grant_types=list(request.grant_types),
            actor=current_principal().subject,
        )
        return client_pb2.RegisterClientResponse(client=client_pb(client), client_secret=secret)

    async def GetClient(self, request: client_pb2.GetClientRequest, context: Context) -> client_pb2.GetClientResponse:
        """Read one client."""
        v = Violations()
        v.require(request.client_id, "client_id")
        v.raise_if_any()
        return client_pb2.GetClientResponse(client=client_pb(await self._clients.get_client(request.client_id)))

    async def ListClients(
        self, request: client_pb2.ListClientsRequest, context: Context
    ) -> client_pb2.ListClientsResponse:
        """Return a page of clients."""
        items, token = await self._clients.list_clients(
            page_size=page_size(request.page_size), page_token=request.page_token
        )
        return client_pb2.ListClientsResponse(clients=[client_pb(c) for c in items], next_page_token=token)


class ConsentServicer(consent_grpc.ConsentServiceServicer):
    """The signed-in user's consents."""

    def __init__(self, consents: ConsentService) -> None:
        self._consents = consents

    async def ListConsents(
        self, request: consent_pb2.ListConsentsRequest, context: Context
    ) -> consent_pb2.ListConsentsResponse:
        """Return a page of the caller's active consents."""
        items, token = await self._consents.list_consents(
            current_principal(), page_size=page_size(request.page_size), page_token=request.page_token
        )
        return consent_pb2.ListConsentsResponse(consents=[consent_pb(c) for c in items], next_page_token=token)

    async def RevokeConsent(
        self, request: consent_pb2.RevokeConsentRequest, context: Context
    ) -> consent_pb2.RevokeConsentResponse:
        """Withdraw a consent."""
        v = Violations()
        v.require(request.client_id, "client_id")
        v.raise_if_any()
        await self._consents.revoke_consent(current_principal(), request.client_id)
        return consent_pb2.RevokeConsentResponse()


class KeyServicer(key_grpc.KeyServiceServicer):
    """The token-signing keys."""

    def __init__(self, keyring: KeyRing, clock: Clock) -> None:
        self._keyring = keyring
        self._clock = clock

    async def RotateSigningKey(
        self, request: key_pb2.RotateSigningKeyRequest, context: Context
    ) -> key_pb2.RotateSigningKeyResponse:
        """Make a new signing key."""
        key = await self._keyring.rotate(current_principal().subject)
        return key_pb2.RotateSigningKeyResponse(key=key_pb(key, self._clock.now()))

    async def ListSigningKeys(
        self, request: key_pb2.ListSigningKeysRequest, context: Context
    ) -> key_pb2.ListSigningKeysResponse:
        """Every key with its current status."""
        now = self._clock.now()
        return key_pb2.ListSigningKeysResponse(keys=[key_pb(k, now) for k in await self._keyring.list_keys()])


class AuditServicer(audit_grpc.AuditServiceServicer):
    """The security audit trail."""

    def __init__(self, audit: AuditService) -> None:
        self._audit = audit

    async def ListAuditEvents(
        self, request: audit_pb2.ListAuditEventsRequest, context: Context
    ) -> audit_pb2.ListAuditEventsResponse:
        """Return a page of audit events, newest first."""
        items, token = await self._audit.list_events(
            page_size=page_size(request.page_size),
            page_token=request.page_token,
            subject=request.subject,
            type_=request.type,
        )
        return audit_pb2.ListAuditEventsResponse(events=[audit_pb(e) for e in items], next_page_token=token)
