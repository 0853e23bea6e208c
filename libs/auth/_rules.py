"""Access rules declared in the .proto files as ``(furima.auth.v1.rule)`` method options."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from furima.auth.v1 import options_pb2
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import MethodDescriptor

# Always open: infrastructure every client and orchestrator must reach without a token.
OPEN_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)


def split_method(path: str) -> tuple[str, str]:
    """``"/pkg.Service/Method"`` → ``("pkg.Service", "Method")``."""
    service, _, method = path.lstrip("/").partition("/")
    return service, method


def method_descriptor(path: str) -> MethodDescriptor | None:
    """The descriptor of a method given its gRPC path, if it is in the default pool."""
    service, method = split_method(path)
    try:
        return descriptor_pool.Default().FindMethodByName(f"{service}.{method}")
    except KeyError:
        return None


def rule_of(method: MethodDescriptor) -> options_pb2.AccessRule | None:
    """The method's declared rule, or None when it declares none."""
    options = method.GetOptions()
    extension: Any = options_pb2.rule
    if not options.HasExtension(extension):
        return None
    rule: options_pb2.AccessRule = options.Extensions[extension]
    return rule


@lru_cache(maxsize=4096)
def rule_for_path(path: str) -> options_pb2.AccessRule | None:
    """The rule of a method by gRPC path (cached: descriptors never change at run time)."""
    descriptor = method_descriptor(path)
    return None if descriptor is None else rule_of(descriptor)


def rule_problem(rule: options_pb2.AccessRule | None) -> str | None:
    """Why a rule is unusable (None when it is well-formed)."""
    if rule is None:
        return "the method declares no (furima.auth.v1.rule)"
    if rule.public and rule.scopes:
        return "a rule is either public or lists scopes, not both"
    if not rule.public and not rule.scopes:
        return "a non-public rule must list at least one scope"
    return None
