"""Wiring of the ID service for the server: the container and the servicers to register.

``services/id/main.py`` (owned by the platform engineer) builds a `GrpcServer` and adds
each tuple from `servicers`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from furima.id.v1 import (
    audit_service_pb2,
    audit_service_pb2_grpc,
    client_service_pb2,
    client_service_pb2_grpc,
    consent_service_pb2,
    consent_service_pb2_grpc,
    key_service_pb2,
    key_service_pb2_grpc,
    oauth_service_pb2,
    oauth_service_pb2_grpc,
    user_service_pb2,
    user_service_pb2_grpc,
)
from google.protobuf.descriptor import ServiceDescriptor

from services.id.api.admin import AuditServicer, ClientServicer, ConsentServicer, KeyServicer
from services.id.api.oauth import OAuthServicer
from services.id.api.users import UserServicer
from services.id.container import MIGRATIONS, IdContainer, assemble, build_container

__all__ = ["MIGRATIONS", "IdContainer", "assemble", "build_container", "servicers"]

Register = Callable[[Any, grpc.aio.Server], None]


def servicers(container: IdContainer) -> list[tuple[Register, Any, ServiceDescriptor]]:
    """``(add_XServicer_to_server, servicer, service descriptor)`` for every ID service."""
    return [
        (
            user_service_pb2_grpc.add_UserServiceServicer_to_server,
            UserServicer(container.users),
            user_service_pb2.DESCRIPTOR.services_by_name["UserService"],
        ),
        (
            oauth_service_pb2_grpc.add_OAuthServiceServicer_to_server,
            OAuthServicer(container.grants, container.oauth),
            oauth_service_pb2.DESCRIPTOR.services_by_name["OAuthService"],
        ),
        (
            client_service_pb2_grpc.add_ClientServiceServicer_to_server,
            ClientServicer(container.clients),
            client_service_pb2.DESCRIPTOR.services_by_name["ClientService"],
        ),
        (
            consent_service_pb2_grpc.add_ConsentServiceServicer_to_server,
            ConsentServicer(container.consents),
            consent_service_pb2.DESCRIPTOR.services_by_name["ConsentService"],
        ),
        (
            key_service_pb2_grpc.add_KeyServiceServicer_to_server,
            KeyServicer(container.keyring, container.clock),
            key_service_pb2.DESCRIPTOR.services_by_name["KeyService"],
        ),
        (
            audit_service_pb2_grpc.add_AuditServiceServicer_to_server,
            AuditServicer(container.audit),
            audit_service_pb2.DESCRIPTOR.services_by_name["AuditService"],
        ),
    ]
