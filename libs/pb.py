"""Small conversions every servicer needs: timestamps, page sizes and page tokens."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

import orjson
from google.protobuf.timestamp_pb2 import Timestamp

from libs.errors import FieldViolation, InvalidArgument

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def timestamp(value: datetime) -> Timestamp:
    """A protobuf Timestamp of an aware datetime."""
    out = Timestamp()
    out.FromDatetime(value)
    return out


def ts(value: datetime | None) -> Timestamp | None:
    """A Timestamp, or None to leave the field unset."""
    return None if value is None else timestamp(value)


def page_size(requested: int, *, maximum: int = MAX_PAGE_SIZE) -> int:
    """The effective page size: a default for 0, clamped to ``maximum``.

    A negative size is the client's mistake: INVALID_ARGUMENT naming ``page_size``.
    """
    if requested < 0:
        raise InvalidArgument("page_size must not be negative", [FieldViolation("page_size", "must be >= 0")])
    return DEFAULT_PAGE_SIZE if requested == 0 else min(requested, maximum)


def encode_page_token(cursor: list[object]) -> str:
    """An opaque page token for a cursor (a short list of JSON values)."""
    return base64.urlsafe_b64encode(orjson.dumps(cursor)).decode().rstrip("=")


def next_page(found: Sequence[T], size: int, cursor: Callable[[T], object]) -> tuple[Sequence[T], str]:
    """A listing read with ``size + 1`` rows, split: the page (the first ``size``) and the
    token that continues after its last item, ``cursor(item)`` ("" when the extra row is
    not there: nothing follows).
    """
    page = found[:size]
    return page, encode_page_token([cursor(page[-1])]) if len(found) > size else ""


def decode_page_token(token: str) -> list[object] | None:
    """The cursor inside a token from `encode_page_token` (None for ""); INVALID_ARGUMENT
    naming ``page_token`` when it was not one of ours.
    """
    if not token:
        return None
    try:
        value = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        value = None
    if not isinstance(value, list):
        raise _not_our_token()
    return value


def after_id(token: str) -> str | None:
    """The id a "newest first by id" listing continues below: the cursor of a token from
    ``encode_page_token([last_id])`` (None for ""); INVALID_ARGUMENT naming ``page_token``
    for anything else.
    """
    cursor = decode_page_token(token)
    if cursor is None:
        return None
    if len(cursor) != 1 or not isinstance(cursor[0], str) or not cursor[0]:
        raise _not_our_token()
    return cursor[0]


def _not_our_token() -> InvalidArgument:
    return InvalidArgument("page_token is not valid", [FieldViolation("page_token", "not a token this API issued")])
