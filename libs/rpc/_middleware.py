"""The per-call behaviour every service method shares, wrapped around each handler once,
when the service is registered (no per-call interceptor dispatch).

Every call to a service method goes through the same steps:
1. a server span continues the caller's trace; an access line and a duration are recorded;
2. the method's access rule (from the .proto) is applied to the bearer token;
3. the principal and the deadline are bound for the handler and for outgoing calls;
4. a `DomainError` the handler raises becomes the right status with rich details;
   anything else becomes INTERNAL with nothing leaked.
Health and reflection are registered unwrapped, so they stay open.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc
import structlog

from libs.auth import (
    Authorizer,
    Principal,
    optional_principal,
    reset_principal,
    rule_for_path,
    rule_problem,
    set_principal,
)
from libs.errors import DomainError, PermissionDenied, Unauthenticated
from libs.rpc._deadline import reset_serving, set_serving
from libs.rpc._errors import status_code_of, to_status
from libs.telemetry import RpcTelemetry

log = structlog.get_logger("furima.rpc")

# grpc-stubs types the aio server API loosely (and partly wrongly); handlers and
# contexts are therefore typed as Any at this one boundary.
Handler = Any
Context = Any


class ServerMiddleware:
    """Builds the wrapped handler of each method of a service."""

    def __init__(self, service_name: str, authorizer: Authorizer, telemetry: RpcTelemetry) -> None:
        self.domain = service_name
        self.authorizer = authorizer
        self.telemetry = telemetry
        self.active: set[asyncio.Task[Any]] = set()
        """Tasks of the calls in progress, so shutdown can wait for them to unwind."""

    async def drain(self, within: float) -> None:
        """Wait (bounded) until every call in progress has finished, including the cleanup
        of a cancelled one, so resources it holds (a database connection) can be closed.
        """
        if self.active:
            await asyncio.wait(list(self.active), timeout=within)

    def wrap(self, method: str, handler: Handler) -> Handler:
        """The handler of ``method`` ("/pkg.Service/Method") with the shared behaviour."""
        rule = rule_for_path(method)
        problem = rule_problem(rule)
        authorizer, telemetry, domain, active = self.authorizer, self.telemetry, self.domain, self.active

        if problem is not None or rule is None:
            # Fail closed: a method without a usable rule is served, but never runs.
            async def authorize(metadata: Any) -> Principal | None:
                raise PermissionDenied(f"{method} has no usable access rule: {problem}", reason="NO_ACCESS_RULE")

        else:
            authorize = functools.partial(authorizer.authorize, rule)

        def bind(context: Context, principal: Principal | None, call: Any) -> tuple[Any, Any]:
            if principal is not None:
                call.set_principal(principal.subject, principal.client_id)
            return set_principal(principal), set_serving(context)

        async def fail(context: Context, error: Exception) -> NoReturn:
            """Abort the call for ``error``: rich status for a domain error, INTERNAL for a bug."""
            if isinstance(error, DomainError):
                status = to_status(error, domain)
                await context.abort(status.code, status.details, status.trailing_metadata)
            if isinstance(error, grpc.aio.AbortError):
                raise error  # the handler aborted the call itself
            log.exception("unhandled_error", method=method, exc_info=error)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")
            raise AssertionError("unreachable: abort raises")

        async def settle(context: Context, error: BaseException) -> NoReturn:
            """End a call that raised: a cancellation passes through, anything else aborts."""
            if isinstance(error, Exception):
                await fail(context, error)
            raise error

        def code_of(context: Context, error: BaseException) -> grpc.StatusCode:
            if isinstance(error, DomainError):
                return status_code_of(error)
            if isinstance(error, grpc.aio.AbortError):
                code = context.code()
                return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN
            if isinstance(error, asyncio.CancelledError | GeneratorExit):
                return grpc.StatusCode.CANCELLED
            return grpc.StatusCode.INTERNAL

        if handler.unary_unary is not None:
            behavior = handler.unary_unary

            async def unary_unary(request: Any, context: Context) -> Any:
                task = asyncio.current_task()
                if task is not None:
                    active.add(task)
                metadata = context.invocation_metadata()
                call = telemetry.start_server_span(method, metadata)
                with call:
                    code = grpc.StatusCode.OK
                    bound = None
                    try:
                        bound = bind(context, await authorize(metadata), call)
                        return await behavior(request, context)
                    except (asyncio.CancelledError, GeneratorExit, Exception) as error:  # noqa: BLE001 — settle() re-raises or aborts
                        code = code_of(context, error)
                        await settle(context, error)
                    finally:
                        _leave(bound)
                        call.finish(code)
                        active.discard(task)  # type: ignore[arg-type]

            return grpc.unary_unary_rpc_method_handler(
                unary_unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        if handler.unary_stream is not None:
            stream_behavior = handler.unary_stream

            async def unary_stream(request: Any, context: Context) -> AsyncIterator[Any]:
                task = asyncio.current_task()
                if task is not None:
                    active.add(task)
                metadata = context.invocation_metadata()
                call = telemetry.start_server_span(method, metadata)
                with call:
                    code = grpc.StatusCode.OK
                    bound = None
                    try:
                        bound = bind(context, await authorize(metadata), call)
                        responses = stream_behavior(request, context)
                        principal = optional_principal()
                        if principal is not None:
                            responses = _while_authorized(responses, principal, authorizer)
                        async for response in responses:
                            yield response
                    except (asyncio.CancelledError, GeneratorExit, Exception) as error:  # noqa: BLE001 — settle() re-raises or aborts
                        code = code_of(context, error)
                        await settle(context, error)
                    finally:
                        _leave(bound)
                        call.finish(code)
                        active.discard(task)  # type: ignore[arg-type]

            return grpc.unary_stream_rpc_method_handler(
                unary_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        raise TypeError(f"{method}: client-streaming methods are not supported by furima's middleware")


class WrappingRegistrar:
    """Stands in for the server when a generated ``add_XServicer_to_server`` registers a
    service, and registers the wrapped handlers on the real server instead.
    """

    def __init__(self, server: grpc.aio.Server, middleware: ServerMiddleware) -> None:
        self.server = server
        self.middleware = middleware
        self.registered: list[str] = []

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """Ignored: the same handlers arrive through `add_registered_method_handlers`."""

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Handler]) -> None:
        """Wrap every method handler of ``service`` and register them on the server."""
        wrapped = {name: self.middleware.wrap(f"/{service}/{name}", h) for name, h in handlers.items()}
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, wrapped),))
        self.server.add_registered_method_handlers(service, wrapped)  # type: ignore[attr-defined]
        self.registered.append(service)


async def _while_authorized(
    responses: AsyncIterator[Any], principal: Principal, authorizer: Authorizer
) -> AsyncIterator[Any]:
    """Pass a stream's messages on while its token is valid: a stream outlives no
    token — it ends with UNAUTHENTICATED when the token expires or is revoked.
    """
    loop = asyncio.get_running_loop()
    expires_at = loop.time() + principal.expires_at.timestamp() - time.time() + authorizer.verifier.leeway
    iterator = aiter(responses)
    while True:
        try:
            async with asyncio.timeout_at(expires_at):
                response = await anext(iterator)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise Unauthenticated("the access token expired during the stream", reason="TOKEN_EXPIRED") from None
        authorizer.ensure_still_valid(principal)
        yield response


def _leave(bound: tuple[Any, Any] | None) -> None:
    if bound is not None:
        reset_principal(bound[0])
        reset_serving(bound[1])
