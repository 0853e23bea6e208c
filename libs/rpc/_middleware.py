"""The per-call behaviour every service method shares, wrapped around each handler once,
when the service is registered (no per-call interceptor dispatch).

Every call to a service method goes through the same steps:
1. a server span continues the caller's trace; an access line and a duration are recorded;
2. the method's access rule (from the .proto) is applied to the bearer token;
3. the principal and the deadline are bound for the handler and for outgoing calls;
4. a `DomainError` the handler raises becomes the right status with rich details;
   anything else becomes INTERNAL with nothing leaked.
Health and reflection are registered unwrapped, so they stay open.

A service's wrapped methods are served by one generic handler (`ServiceHandler`) rather
than as registered methods: grpc hands a generic handler the call's invocation metadata,
which it has read anyway, so the middleware need not read it again (about 1 us a call).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc
import structlog

from libs.auth import Authorizer, Principal, optional_principal, rule_for_path, rule_problem
from libs.auth._authorizer import UNDECIDED, Decision, Undecided
from libs.auth._principal import _current as _principal_var  # what set_principal sets
from libs.errors import DomainError, PermissionDenied, Unauthenticated
from libs.rpc._deadline import _serving as _serving_var  # what set_serving sets
from libs.rpc._errors import status_code_of, to_status
from libs.telemetry import RpcTelemetry, ServerCall

log = structlog.get_logger("furima.rpc")

# grpc-stubs types the aio server API loosely (and partly wrongly); handlers and
# contexts are therefore typed as Any at this one boundary.
Handler = Any
Context = Any

_OK = grpc.StatusCode.OK


def _undecided(metadata: Any) -> Undecided:
    """For methods whose authorization only the awaited path can decide."""
    return UNDECIDED


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
        return self.served(method, handler).handler

    def served(self, method: str, handler: Handler) -> ServedMethod:
        """``method``'s handler with the shared behaviour, and the same behaviour for calls
        whose metadata grpc has already read (see `ServiceHandler`).

        Everything that depends only on the method (its rule, its telemetry names) is
        resolved here, once; a call whose token was verified before is authorized without
        awaiting (`Authorizer.cached_authorize`), any other through `Authorizer.authorize`.
        """
        rule = rule_for_path(method)
        problem = rule_problem(rule)
        authorizer, telemetry, domain, active = self.authorizer, self.telemetry, self.domain, self.active

        authorize: Callable[[Any], Awaitable[Principal | None]]
        decide: Decision
        if problem is not None or rule is None:
            # Fail closed: a method without a usable rule is served, but never runs.
            async def refuse(metadata: Any) -> Principal | None:
                raise PermissionDenied(f"{method} has no usable access rule: {problem}", reason="NO_ACCESS_RULE")

            authorize, decide = refuse, _undecided
        else:
            authorize = functools.partial(authorizer.authorize, rule)
            # An authorizer that authorizes its own way (a subclass, a patch) decides every call.
            own = getattr(authorizer.authorize, "__func__", None) is Authorizer.authorize
            decide = authorizer.cached_authorize(rule) if own else _undecided

        start_call: Callable[[Any], ServerCall]
        if getattr(telemetry.start_server_span, "__func__", None) is RpcTelemetry.start_server_span:
            start_call = telemetry.server_calls(method)
        else:
            start_call = functools.partial(telemetry.start_server_span, method)

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

            async def unary_unary(metadata: Any, request: Any, context: Context) -> Any:
                task = asyncio.current_task()
                if task is not None:
                    active.add(task)
                if metadata is None:
                    metadata = context.invocation_metadata()
                call = start_call(metadata)
                with call:
                    code = _OK
                    principal_reset = serving_reset = None
                    try:
                        principal = decide(metadata)
                        if principal is UNDECIDED:
                            principal = await authorize(metadata)
                        if principal is not None:
                            call.set_principal(principal.subject, principal.client_id)
                        principal_reset = _principal_var.set(principal)
                        serving_reset = _serving_var.set(context)
                        return await behavior(request, context)
                    except (asyncio.CancelledError, GeneratorExit, Exception) as error:  # noqa: BLE001 — settle() re-raises or aborts
                        code = code_of(context, error)
                        await settle(context, error)
                    finally:
                        if principal_reset is not None:
                            _principal_var.reset(principal_reset)
                        if serving_reset is not None:
                            _serving_var.reset(serving_reset)
                        call.finish(code)
                        active.discard(task)  # type: ignore[arg-type]

            return ServedMethod(
                grpc.unary_unary_rpc_method_handler(
                    functools.partial(unary_unary, None),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                ),
                unary_unary,
            )

        if handler.unary_stream is not None:
            stream_behavior = handler.unary_stream

            async def unary_stream(metadata: Any, request: Any, context: Context) -> AsyncIterator[Any]:
                task = asyncio.current_task()
                if task is not None:
                    active.add(task)
                if metadata is None:
                    metadata = context.invocation_metadata()
                call = start_call(metadata)
                with call:
                    code = _OK
                    principal_reset = serving_reset = None
                    try:
                        principal = decide(metadata)
                        if principal is UNDECIDED:
                            principal = await authorize(metadata)
                        if principal is not None:
                            call.set_principal(principal.subject, principal.client_id)
                        principal_reset = _principal_var.set(principal)
                        serving_reset = _serving_var.set(context)
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
                        if principal_reset is not None:
                            _principal_var.reset(principal_reset)
                        if serving_reset is not None:
                            _serving_var.reset(serving_reset)
                        call.finish(code)
                        active.discard(task)  # type: ignore[arg-type]

            return ServedMethod(
                grpc.unary_stream_rpc_method_handler(
                    functools.partial(unary_stream, None),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                ),
                unary_stream,
            )

        raise TypeError(f"{method}: client-streaming methods are not supported by furima's middleware")


class ServedMethod:
    """A method with the shared behaviour: ``handler`` (an ordinary RpcMethodHandler, its
    behaviour reading the call's metadata from the servicer context) and ``behaviour``
    itself, which takes the metadata first (``None``: read it from the context).
    """

    __slots__ = ("_deserializer", "_serializer", "_streaming", "behaviour", "handler")

    def __init__(self, handler: Handler, behaviour: Callable[..., Any]) -> None:
        self.handler = handler
        self.behaviour = behaviour
        self._deserializer = handler.request_deserializer
        self._serializer = handler.response_serializer
        self._streaming: bool = handler.response_streaming

    def for_call(self, metadata: Any) -> _Call:
        """The handler of one call whose invocation metadata grpc has already read."""
        behaviour = functools.partial(self.behaviour, metadata)
        if self._streaming:
            return _Call(self._deserializer, self._serializer, True, None, behaviour)
        return _Call(self._deserializer, self._serializer, False, behaviour, None)


class _Call:
    """The RpcMethodHandler of one call (the attributes grpc reads)."""

    __slots__ = ("request_deserializer", "response_serializer", "response_streaming", "unary_stream", "unary_unary")
    request_streaming = False
    stream_unary = None
    stream_stream = None

    def __init__(
        self,
        request_deserializer: Any,
        response_serializer: Any,
        response_streaming: bool,
        unary_unary: Any,
        unary_stream: Any,
    ) -> None:
        self.request_deserializer = request_deserializer
        self.response_serializer = response_serializer
        self.response_streaming = response_streaming
        self.unary_unary = unary_unary
        self.unary_stream = unary_stream


class ServiceHandler(grpc.GenericRpcHandler):  # type: ignore[type-arg]  # grpc-stubs: generic
    """Serves the wrapped methods of one service.

    A generic handler sees the ``invocation_metadata`` grpc reads for every call (to find
    its handler); each call's handler is bound to that tuple, so the middleware does not
    convert the call's metadata a second time through the servicer context.
    """

    def __init__(self, methods: dict[str, ServedMethod]) -> None:
        self._methods = methods

    def service(self, handler_call_details: Any) -> Any:
        """The handler of this call, or None for a method of another service."""
        served = self._methods.get(handler_call_details.method)
        return None if served is None else served.for_call(handler_call_details.invocation_metadata)


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
        """Wrap every method handler of ``service`` and serve them through one `ServiceHandler`.

        They are not registered methods of the grpc server: calls of those never reach a
        generic handler, which is where the call's metadata comes already read.
        """
        served = {f"/{service}/{name}": self.middleware.served(f"/{service}/{name}", h) for name, h in handlers.items()}
        self.server.add_generic_rpc_handlers((ServiceHandler(served),))
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
