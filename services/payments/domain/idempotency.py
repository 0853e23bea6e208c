"""Idempotency keys: a replay gets the first answer; another request under the same key is refused."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

from libs.errors import FieldViolation, InvalidArgument

# The contract promises at least 24 hours.
MIN_RETENTION = timedelta(hours=24)


@dataclass(frozen=True)
class IdempotencyRecord:
    """What a key was first used for, and the response it got."""

    scope: str
    key: str
    request_hash: str
    response: str
    created_at: datetime
    expires_at: datetime


def request_hash(fields: Mapping[str, object]) -> str:
    """A stable SHA-256 of a request's fields (key order does not matter; the key itself
    must not be among them).
    """
    canonical = orjson.dumps(dict(fields), option=orjson.OPT_SORT_KEYS | orjson.OPT_NAIVE_UTC)
    return hashlib.sha256(canonical).hexdigest()


def replay(record: IdempotencyRecord, fingerprint: str) -> str:
    """The stored response, if the request is the one the key was first used for;
    INVALID_ARGUMENT with reason ``IDEMPOTENCY_KEY_REUSED`` otherwise.
    """
    return stored_response(record.request_hash, record.response, fingerprint)


def stored_response(request_hash: str, response: str, fingerprint: str) -> str:
    """``response`` when ``fingerprint`` is the stored ``request_hash``; else the refusal of `replay`."""
    if request_hash != fingerprint:
        raise InvalidArgument(
            "the idempotency key was already used for a different request",
            [FieldViolation("idempotency_key", "was already used for a different request")],
            reason="IDEMPOTENCY_KEY_REUSED",
        )
    return response


def retention_until(now: datetime, retention: timedelta) -> datetime:
    """When a record made ``now`` may be purged (never sooner than the contract's 24 hours)."""
    return now + max(retention, MIN_RETENTION)
