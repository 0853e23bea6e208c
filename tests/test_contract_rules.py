"""Every RPC in every contract declares a usable access rule; new RPCs cannot ship open."""

from __future__ import annotations

import importlib
import pkgutil

import furima
from google.protobuf.descriptor import MethodDescriptor

from libs.auth import rule_of, rule_problem


def _all_methods() -> list[MethodDescriptor]:
    methods = []
    for module_info in pkgutil.walk_packages(furima.__path__, prefix="furima."):
        if not module_info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(module_info.name)
        for service in module.DESCRIPTOR.services_by_name.values():
            methods.extend(service.methods)
    return methods


def test_contracts_have_services() -> None:
    """The walk below really sees the generated services (it cannot pass vacuously)."""
    names = {m.containing_service.full_name for m in _all_methods()}
    assert {"furima.id.v1.UserService", "furima.id.v1.OAuthService", "furima.events.v1.EventStreamService"} <= names


def test_every_method_declares_a_usable_rule() -> None:
    """Each method has (furima.auth.v1.rule) that is public or lists scopes, not both, not neither."""
    problems = {m.full_name: rule_problem(rule_of(m)) for m in _all_methods()}
    assert {name: why for name, why in problems.items() if why is not None} == {}


def test_public_methods_are_the_intended_few() -> None:
    """Only sign-up, sign-in, the token endpoint, revocation and the JWKS are public."""
    public = {m.full_name for m in _all_methods() if (rule := rule_of(m)) is not None and rule.public}
    assert public == {
        "furima.id.v1.UserService.SignUp",
        "furima.id.v1.UserService.SignIn",
        "furima.id.v1.OAuthService.Token",
        "furima.id.v1.OAuthService.Revoke",
        "furima.id.v1.OAuthService.GetJwks",
    }
