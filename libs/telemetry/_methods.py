"""gRPC method names split once into the span name and semantic-convention attributes."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import grpc


@dataclass(frozen=True, slots=True)
class RpcMethod:
    """A full method name (``/pkg.Service/Method``) and everything derived from it.

    The attribute mappings are shared by every call and must not be mutated; the SDK
    copies span attributes, and metric attributes are only read.
    """

    full_name: str
    """As on the wire: ``/furima.id.v1.UserService/GetUser``."""
    service: str
    """``furima.id.v1.UserService``; empty when the name is malformed."""
    method: str
    """``GetUser``."""
    span_name: str
    """The full name without the leading slash."""
    span_attributes: dict[str, str] = field(repr=False)
    """``rpc.system``, ``rpc.service``, ``rpc.method``."""
    _by_code: dict[grpc.StatusCode, dict[str, str | int]] = field(default_factory=dict, repr=False)

    def metric_attributes(self, code: grpc.StatusCode) -> dict[str, str | int]:
        """Duration-histogram attributes for one status code, built once per (method, code)."""
        attrs = self._by_code.get(code)
        if attrs is None:
            attrs = {
                "rpc.method": self.method,
                "rpc.service": self.service,
                "rpc.grpc.status_code": status_number(code),
            }
            self._by_code[code] = attrs
        return attrs


def status_number(code: grpc.StatusCode) -> int:
    """Return the numeric gRPC status (``StatusCode.value`` is ``(number, text)``)."""
    number: int = code.value[0]
    return number


# Bounded: the method name comes from the client, and unknown methods reach interceptors too.
@lru_cache(maxsize=1024)
def rpc_method(full_name: str) -> RpcMethod:
    """Split ``/pkg.Service/Method``; anything else becomes a method with an empty service."""
    span_name = full_name[1:] if full_name.startswith("/") else full_name
    service, slash, method = span_name.rpartition("/")
    if not slash:
        service, method = "", span_name
    return RpcMethod(
        full_name=full_name,
        service=service,
        method=method,
        span_name=span_name,
        span_attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
    )
