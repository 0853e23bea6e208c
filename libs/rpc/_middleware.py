"""The server interceptor: telemetry, authentication and authorization, deadline and
error mapping, composed once per method and cached.

Every call to a service method goes through the same steps:
1. a server span continues the caller's trace; an access line and a duration are recorded;
2. the method's access rule (from the .proto) is applied to the bearer token;
3. the principal and the deadline are bound for the handler and for outgoing calls;
4. a `DomainError` the handler raises becomes the right status with rich details;
   anything else becomes INTERNAL with nothing leaked.
Health and reflection pass through untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog

from libs.auth import (
    OPEN_SERVICES,
    Authorizer,
    reset_principal,
    rule_for_path,
    rule_problem,
    set_principal,
    split_method,
)
from libs.errors import DomainError, PermissionDenied
from libs.rpc._deadline import reset_deadline, set_deadline
from libs.rpc._errors import status_code_of, to_status
from libs.telemetry import RpcTelemetry

log = structlog.get_logger("furima.rpc")

# grpc-stubs types the aio server API loosely (and partly wrongly); handlers and
# contexts are therefore typed as Any at this one boundary.
Handler = Any
Context = Any
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Handler]]


class ServerMiddleware(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Wraps each method handler of a service with the shared per-call behaviour."""

    def __init__(self, service_name: str, authorizer: Authorizer, telemetry: RpcTelemetry) -> None:
        self.domain = service_name
        self.authorizer = authorizer
        self.telemetry = telemetry
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        """Return the wrapped handler for this method (built on first use)."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = handler if split_method(method)[0] in OPEN_SERVICES else self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: Handler) -> Handler:
        rule = rule_for_path(method)
        problem = rule_problem(rule)
        authorizer, telemetry, domain = self.authorizer, self.telemetry, self.domain

        async def enter(context: Context, call: Any) -> tuple[Any, Any]:
            if problem is not None or rule is None:
                # Fail closed: a method without a usable rule is never callable.
                raise PermissionDenied(f"{method} has no usable access rule: {problem}", reason="NO_ACCESS_RULE")
            principal = await authorizer.authorize(rule, context.invocation_metadata())
            if principal is not None:
                call.set_principal(principal.subject, principal.client_id)
            return set_principal(principal), set_deadline(context.time_remaining())

        if handler.unary_unary is not None:
            behavior = handler.unary_unary

            async def unary_unary(request: Any, context: Context) -> Any:
                call = telemetry.start_server_span(method, context.invocation_metadata())
                with call:
                    code = grpc.StatusCode.OK
                    tokens = None
                    try:
                        tokens = await enter(context, call)
                        return await behavior(request, context)
                    except asyncio.CancelledError:
                        code = grpc.StatusCode.CANCELLED
                        raise
                    except DomainError as error:
                        code = status_code_of(error)
                        await _abort(context, error, domain)
                    except Exception as error:
                        code = _code_of(context, error)
                        if code is grpc.StatusCode.INTERNAL:
                            log.exception("unhandled_error", method=method)
                            await context.abort(code, "internal error")
                        raise
                    finally:
                        _leave(tokens)
                        call.finish(code)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        if handler.unary_stream is not None:
            stream_behavior = handler.unary_stream

            async def unary_stream(request: Any, context: Context) -> AsyncIterator[Any]:
                call = telemetry.start_server_span(method, context.invocation_metadata())
                with call:
                    code = grpc.StatusCode.OK
                    tokens = None
                    try:
                        tokens = await enter(context, call)
                        async for response in stream_behavior(request, context):
                            yield response
                    except (asyncio.CancelledError, GeneratorExit):
                        code = grpc.StatusCode.CANCELLED
                        raise
                    except DomainError as error:
                        code = status_code_of(error)
                        await _abort(context, error, domain)
                    except Exception as error:
                        code = _code_of(context, error)
                        if code is grpc.StatusCode.INTERNAL:
                            log.exception("unhandled_error", method=method)
                            await context.abort(code, "internal error")
                        raise
                    finally:
                        _leave(tokens)
                        call.finish(code)

            return grpc.unary_stream_rpc_method_handler(
                unary_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        raise TypeError(f"{method}: client-streaming methods are not supported by furima's middleware")


async def _abort(context: Context, error: DomainError, domain: str) -> None:
    status = to_status(error, domain)
    await context.abort(status.code, status.details, status.trailing_metadata)


def _code_of(context: Context, error: BaseException) -> grpc.StatusCode:
    """The code of a call the handler ended itself with ``context.abort`` (else INTERNAL)."""
    if isinstance(error, grpc.aio.AbortError):
        code = context.code()
        return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN
    return grpc.StatusCode.INTERNAL


def _leave(tokens: tuple[Any, Any] | None) -> None:
    if tokens is not None:
        reset_principal(tokens[0])
        reset_deadline(tokens[1])
