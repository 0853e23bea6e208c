"""The append-only record of every automated and human decision."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SYSTEM = "system"


def agent(agent_id: str) -> str:
    """The actor string of a customer-service agent."""
    return f"agent:{agent_id}"


def user(user_id: str) -> str:
    """The actor string of an end user."""
    return f"user:{user_id}"


def service(client_id: str) -> str:
    """The actor string of a calling service."""
    return f"service:{client_id}"


def content_subject(kind: str, content_id: str) -> str:
    """The subject string of a piece of content."""
    return f"content:{kind}:{content_id}"


def user_subject(user_id: str) -> str:
    """The subject string of a user."""
    return f"user:{user_id}"


def case_subject(case_id: str) -> str:
    """The subject string of a case."""
    return f"case:{case_id}"


@dataclass(frozen=True)
class AuditEntry:
    """Who or what did what to whom, with which rules and model, before and after."""

    entry_id: str
    at: datetime
    actor: str
    action: str
    subject: str
    ruleset_version: str = ""
    model_version: str = ""
    before: Mapping[str, Any] = field(default_factory=dict)
    after: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""
