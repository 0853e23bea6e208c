"""The JWKS cache's refresh rules and the deny-list feed's fail-closed start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from furima.events.v1 import events_pb2

from libs.auth import DenyList, DenyListFeeder, JwksCache
from libs.errors import Unavailable


class FakeJwks:
    """Serves whatever key set the test sets, counting fetches."""

    def __init__(self) -> None:
        self.keys: dict[str, ec.EllipticCurvePublicKey] = {}
        self.fetches = 0

    async def __call__(self) -> Iterable[tuple[str, ec.EllipticCurvePublicKey]]:
        self.fetches += 1
        return list(self.keys.items())


def _key() -> ec.EllipticCurvePublicKey:
    return ec.generate_private_key(ec.SECP256R1()).public_key()


async def test_unknown_kid_refetches_but_rate_limited() -> None:
    """An unknown kid triggers one fetch; a flood of unknown kids within the interval triggers no more."""
    jwks = FakeJwks()
    cache = JwksCache(jwks, min_refresh_interval=60)
    await cache.refresh()
    jwks.keys["new"] = _key()
    assert await cache.public_key("new") is None  # fetched just now: rate limit holds
    for kid in ("a", "b", "c"):
        assert await cache.public_key(kid) is None
    assert jwks.fetches == 1


async def test_unknown_kid_is_found_after_the_interval() -> None:
    """After the minimum interval an unknown kid (a rotated key) is fetched and trusted."""
    jwks = FakeJwks()
    cache = JwksCache(jwks, min_refresh_interval=0)
    await cache.refresh()
    key = _key()
    jwks.keys["rotated"] = key
    assert await cache.public_key("rotated") is key


async def test_keys_no_longer_published_are_dropped_after_max_age() -> None:
    """Past max_age the set is replaced in the background; a withdrawn key stops being trusted."""
    jwks = FakeJwks()
    jwks.keys["old"] = _key()
    cache = JwksCache(jwks, min_refresh_interval=0, max_age=0)
    await cache.refresh()
    del jwks.keys["old"]
    assert await cache.public_key("old") is not None  # served at once, refresh scheduled
    for _ in range(50):
        await asyncio.sleep(0)
        if await cache.public_key("old") is None:
            break
    assert await cache.public_key("old") is None


class SilentSource:
    """An event source that never answers (the ID service is unreachable)."""

    async def stream(self, after: int, types: Sequence[str], follow: bool) -> AsyncIterator[events_pb2.Event]:
        await asyncio.Event().wait()
        yield events_pb2.Event()  # pragma: no cover — never reached


async def test_feeder_fails_closed_when_history_cannot_be_read() -> None:
    """A service whose deny-list cannot catch up refuses to start instead of trusting every token."""
    feeder = DenyListFeeder(DenyList(), SilentSource())
    with pytest.raises(Unavailable):
        await feeder.start(catch_up_timeout=0.2)
