"""Authentication and authorization shared by every service.

Tokens are verified locally (`TokenVerifier`) against keys from the ID service
(`JwksCache`) and a deny-list fed by its event stream (`DenyList`, `DenyListFeeder`);
methods declare who may call them in the .proto (`rule_for_path`); handlers read the
caller through `current_principal()`.
"""

from libs.auth._authorizer import Authorizer, bearer_token
from libs.auth._denylist import DENYLIST_EVENT_TYPES, DenyList
from libs.auth._feeder import DenyListFeeder
from libs.auth._keys import JwksCache, KeyResolver, StaticKeys, jwk_to_public_key
from libs.auth._principal import (
    Principal,
    current_principal,
    optional_principal,
    reset_principal,
    set_principal,
)
from libs.auth._rules import OPEN_SERVICES, method_descriptor, rule_for_path, rule_of, rule_problem, split_method
from libs.auth._verifier import ALGORITHM, TokenVerifier, principal_from_claims

__all__ = [
    "ALGORITHM",
    "DENYLIST_EVENT_TYPES",
    "OPEN_SERVICES",
    "Authorizer",
    "DenyList",
    "DenyListFeeder",
    "JwksCache",
    "KeyResolver",
    "Principal",
    "StaticKeys",
    "TokenVerifier",
    "bearer_token",
    "current_principal",
    "jwk_to_public_key",
    "method_descriptor",
    "optional_principal",
    "principal_from_claims",
    "reset_principal",
    "rule_for_path",
    "rule_of",
    "rule_problem",
    "set_principal",
    "split_method",
]
