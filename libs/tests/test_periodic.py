"""Periodic background work: rounds repeat, a failing round does not stop the next, stop is clean."""

from __future__ import annotations

import asyncio

import pytest

from libs.periodic import Periodic


async def test_rounds_repeat_survive_failures_and_stop() -> None:
    """The work runs again after it raised; after stop it runs no more."""
    calls: list[int] = []

    async def work() -> None:
        calls.append(len(calls))
        if len(calls) == 2:
            raise RuntimeError("a bad round")

    rounds = Periodic("test-rounds", work)
    rounds.start(0.01)
    with pytest.raises(RuntimeError, match="already running"):
        rounds.start(0.01)
    for _ in range(200):
        if len(calls) >= 4:
            break
        await asyncio.sleep(0.01)
    await rounds.stop()
    assert len(calls) >= 4
    assert not rounds.running
    seen = len(calls)
    await asyncio.sleep(0.05)
    assert len(calls) == seen
