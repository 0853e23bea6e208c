"""`Grouped`, the queue under group commit: requests queued while a group runs share the
next group; a failed group is run again request by request, so every caller gets its
own answer (`GroupCommit` itself is tested with the storage tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from libs.storage import Grouped


class Recorder:
    """Runs groups and single requests, remembering their shape; "bad" requests fail."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.alone: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def group(self, requests: Sequence[str]) -> list[str]:
        await self.gate.wait()
        if "bad" in requests:
            raise ValueError("a bad request in the group")
        self.groups.append(list(requests))
        return [r.upper() for r in requests]

    async def one(self, request: str) -> str:
        await self.gate.wait()
        if request == "bad":
            raise ValueError("bad request")
        self.alone.append(request)
        return request.upper()


def committer(recorder: Recorder, max_size: int = 10) -> Grouped[str, str]:
    return Grouped(recorder.group, recorder.one, max_size=max_size)


async def test_requests_arriving_while_one_runs_share_the_next_group() -> None:
    recorder = Recorder()
    commit = committer(recorder)
    recorder.gate.clear()
    first = asyncio.create_task(commit.submit("a"))
    await asyncio.sleep(0)  # "a" starts alone at once and waits on the gate
    rest = [asyncio.create_task(commit.submit(name)) for name in ("b", "c", "d")]
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await first == "A"
    assert await asyncio.gather(*rest) == ["B", "C", "D"]
    assert recorder.alone == ["a"]
    assert recorder.groups == [["b", "c", "d"]]


async def test_a_failed_group_runs_each_request_alone() -> None:
    recorder = Recorder()
    commit = committer(recorder)
    recorder.gate.clear()
    blocker = asyncio.create_task(commit.submit("x"))
    await asyncio.sleep(0)
    tasks = [asyncio.create_task(commit.submit(name)) for name in ("b", "bad", "c")]
    await asyncio.sleep(0)
    recorder.gate.set()
    await blocker
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] == "B"
    assert isinstance(results[1], ValueError)
    assert str(results[1]) == "bad request"
    assert results[2] == "C"
    assert recorder.groups == []
    assert recorder.alone == ["x", "b", "c"]


async def test_groups_stay_within_max_size_and_an_oversized_request_runs_alone() -> None:
    recorder = Recorder()
    commit = committer(recorder, max_size=5)
    recorder.gate.clear()
    blocker = asyncio.create_task(commit.submit("x"))
    await asyncio.sleep(0)
    sizes = {"a": 2, "b": 2, "c": 2, "big": 9, "d": 1}
    tasks = [asyncio.create_task(commit.submit(name, size)) for name, size in sizes.items()]
    await asyncio.sleep(0)
    recorder.gate.set()
    await blocker
    assert await asyncio.gather(*tasks) == ["A", "B", "C", "BIG", "D"]
    assert recorder.groups == [["a", "b"]]
    assert recorder.alone == ["x", "c", "big", "d"]


async def test_a_caller_giving_up_does_not_cancel_the_others() -> None:
    recorder = Recorder()
    commit = committer(recorder)
    recorder.gate.clear()
    blocker = asyncio.create_task(commit.submit("x"))
    await asyncio.sleep(0)
    quitter = asyncio.create_task(commit.submit("q"))
    stayer = asyncio.create_task(commit.submit("s"))
    await asyncio.sleep(0)
    quitter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await quitter
    recorder.gate.set()
    await blocker
    assert await stayer == "S"
    assert recorder.groups == [["q", "s"]]  # the group ran, the quitter's work with it
