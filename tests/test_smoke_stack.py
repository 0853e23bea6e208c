"""The stack comes up and a service token works on a second service."""

from __future__ import annotations

from furima.testing.v1 import echo_service_pb2, echo_service_pb2_grpc

from libs.rpc import make_channel
from tests.stack import EchoService, Stack


async def test_client_credentials_token_works_on_second_service(stack: Stack, echo: EchoService) -> None:
    """A client-credentials token from ID is accepted by a service that verifies it locally."""
    token = await stack.client_token()
    async with make_channel(echo.address) as channel:
        reply = await echo_service_pb2_grpc.EchoServiceStub(channel).Echo(
            echo_service_pb2.EchoRequest(message="hello"), metadata=[("authorization", f"Bearer {token}")]
        )
    assert (reply.message, reply.subject) == ("hello", "furima-dev")
