"""`Grouped`, the queue under group commit: requests queued while a group runs share the
next group; a failed group is run again request by request, so every caller gets its
own answer (`GroupCommit` itself is tested with the storage tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from libs.storage import Grouped
from libs.storage._group_commit import BUSY_SPELL_S


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


async def test_with_parallel_groups_a_new_group_starts_while_the_others_run() -> None:
    """parallel=2: requests arriving while one group waits start a second group at once;
    a third batch waits for one of them, and nothing is lost or answered twice.
    """
    recorder = Recorder()
    running = 0
    most = 0

    async def group(requests: Sequence[str]) -> list[str]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            return await recorder.group(requests)
        finally:
            running -= 1

    commit: Grouped[str, str] = Grouped(group, None, max_size=10, parallel=lambda: 2)
    recorder.gate.clear()
    first = asyncio.create_task(commit.submit("a"))
    await asyncio.sleep(0)
    second = [asyncio.create_task(commit.submit(name)) for name in ("b", "c")]
    await asyncio.sleep(0)
    third = [asyncio.create_task(commit.submit(name)) for name in ("d", "e")]
    await asyncio.sleep(0)
    assert running == 2  # "a", and "b, c" in a second group; "d, e" wait for one of them
    recorder.gate.set()
    assert await asyncio.gather(first, *second, *third) == ["A", "B", "C", "D", "E"]
    assert most == 2
    assert sorted(r for g in recorder.groups for r in g) == ["a", "b", "c", "d", "e"]
    assert len(recorder.groups) == 3


async def test_one_group_at_a_time_by_default() -> None:
    """Without parallel, requests wait for the running group and share the next one."""
    recorder = Recorder()
    commit: Grouped[str, str] = Grouped(recorder.group, None, max_size=10)
    recorder.gate.clear()
    tasks = [asyncio.create_task(commit.submit("a"))]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(commit.submit(name)) for name in ("b", "c")]
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await asyncio.gather(*tasks) == ["A", "B", "C"]
    assert recorder.groups == [["a"], ["b", "c"]]


async def test_when_parallel_drops_the_extra_groups_stop_after_their_current_one() -> None:
    """Parallel going from 2 to 1 (payments' careful groups): once the two running groups
    end, the requests waiting meanwhile run one group at a time.
    """
    recorder = Recorder()
    running = 0
    most_after_drop = 0
    allowed = 2

    async def group(requests: Sequence[str]) -> list[str]:
        nonlocal running, most_after_drop
        running += 1
        if allowed == 1 and not requests[0].startswith("first"):
            most_after_drop = max(most_after_drop, running)
        try:
            await asyncio.sleep(0.01)
            return await recorder.group(requests)
        finally:
            running -= 1

    commit: Grouped[str, str] = Grouped(group, None, max_size=1, parallel=lambda: allowed)
    first = []
    for i in range(2):  # each arrives while the groups before it run: two groups at once
        first.append(asyncio.create_task(commit.submit(f"first{i}")))
        await asyncio.sleep(0.001)
    assert running == 2
    allowed = 1
    later = [asyncio.create_task(commit.submit(f"later{i}")) for i in range(6)]
    assert await asyncio.gather(*first, *later) == ["FIRST0", "FIRST1"] + [f"LATER{i}" for i in range(6)]
    assert most_after_drop == 1


# -- linger: wait for callers on their way, never for a lone one ----------------------

FOREVER = 3600.0  # a linger nobody waits out: the test would hang instead of passing


async def test_a_lone_caller_is_not_kept_waiting_by_linger() -> None:
    recorder = Recorder()
    commit: Grouped[str, str] = Grouped(recorder.group, recorder.one, max_size=10, linger=FOREVER)
    assert await asyncio.wait_for(commit.submit("a"), 5) == "A"
    in_flight = 1
    counted: Grouped[str, str] = Grouped(
        recorder.group, recorder.one, max_size=10, linger=FOREVER, in_flight=lambda: in_flight
    )
    assert await asyncio.wait_for(counted.submit("b"), 5) == "B"
    assert recorder.alone == ["a", "b"]


async def test_linger_waits_for_the_callers_in_flight_and_stops_once_all_queued() -> None:
    recorder = Recorder()
    in_flight = 3
    commit: Grouped[str, str] = Grouped(
        recorder.group, recorder.one, max_size=10, linger=FOREVER, in_flight=lambda: in_flight
    )
    tasks = [asyncio.create_task(commit.submit("a"))]
    for _ in range(5):
        await asyncio.sleep(0)
    # Lingering: two more are on their way.
    assert recorder.groups == []
    assert recorder.alone == []
    tasks.append(asyncio.create_task(commit.submit("b")))
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(commit.submit("c")))  # the last one: no need to wait on
    assert await asyncio.wait_for(asyncio.gather(*tasks), 5) == ["A", "B", "C"]
    assert recorder.groups == [["a", "b", "c"]]


async def test_linger_gives_up_on_a_caller_that_does_not_come() -> None:
    recorder = Recorder()
    commit: Grouped[str, str] = Grouped(recorder.group, recorder.one, max_size=10, linger=0.01, in_flight=lambda: 2)
    assert await asyncio.wait_for(commit.submit("a"), 5) == "A"
    assert recorder.alone == ["a"]


async def test_linger_stops_when_the_group_is_full() -> None:
    recorder = Recorder()
    commit: Grouped[str, str] = Grouped(recorder.group, recorder.one, max_size=2, linger=FOREVER, in_flight=lambda: 9)
    first = asyncio.create_task(commit.submit("a"))
    await asyncio.sleep(0)
    second = asyncio.create_task(commit.submit("b"))
    assert await asyncio.wait_for(asyncio.gather(first, second), 5) == ["A", "B"]
    assert recorder.groups == [["a", "b"]]


@pytest.mark.parametrize("counted", [False, True], ids=["no count", "all counted queued"])
async def test_linger_starts_once_callers_queue_together(counted: bool) -> None:
    """A lone caller goes at once; callers that queued while a group ran mean a busy
    service, so the next drainer lingers and later ones join — also when every caller
    counted in flight has queued (the next requests may not have started yet).
    """
    recorder = Recorder()
    commit: Grouped[str, str]

    def everyone_queued() -> int:
        return len(commit._queue) + commit._grouped_items

    in_flight = everyone_queued if counted else None
    commit = Grouped(recorder.group, recorder.one, max_size=10, linger=0.05, in_flight=in_flight)
    recorder.gate.clear()
    first = asyncio.create_task(commit.submit("x"))
    await asyncio.sleep(0)  # "x" runs alone at once, held by the gate
    queued = [asyncio.create_task(commit.submit(name)) for name in ("b", "c")]
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await first == "X"
    for _ in range(5):
        await asyncio.sleep(0)
    late = [asyncio.create_task(commit.submit("d"))]  # arrives while the drainer lingers
    for _ in range(5):
        await asyncio.sleep(0)
    late.append(asyncio.create_task(commit.submit("e")))  # and so does this one
    assert await asyncio.wait_for(asyncio.gather(*queued, *late), 5) == ["B", "C", "D", "E"]
    assert recorder.alone == ["x"]
    assert recorder.groups == [["b", "c", "d", "e"]]


async def test_callers_in_a_running_group_are_not_waited_for() -> None:
    """parallel=2: "a" is in a group that is running; a second drainer lingers for "c"
    only (the one still on its way), not for "a".
    """
    recorder = Recorder()
    in_flight = 1
    commit: Grouped[str, str] = Grouped(
        recorder.group, None, max_size=10, linger=FOREVER, in_flight=lambda: in_flight, parallel=lambda: 2
    )
    recorder.gate.clear()
    first = asyncio.create_task(commit.submit("a"))
    for _ in range(3):
        await asyncio.sleep(0)  # "a" alone: its group runs, held by the gate
    in_flight = 3
    second = asyncio.create_task(commit.submit("b"))  # "c" is still on its way
    for _ in range(5):
        await asyncio.sleep(0)
    third = asyncio.create_task(commit.submit("c"))
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await asyncio.wait_for(asyncio.gather(first, second, third), 5) == ["A", "B", "C"]
    assert sorted(recorder.groups) == [["a"], ["b", "c"]]


async def test_after_a_busy_spell_a_lone_caller_goes_at_once() -> None:
    """A group of several says the service is busy only for a moment: a lone caller
    after a pause is not kept waiting because of it.
    """
    recorder = Recorder()
    commit: Grouped[str, str] = Grouped(recorder.group, recorder.one, max_size=2, linger=FOREVER)
    recorder.gate.clear()
    first = asyncio.create_task(commit.submit("x"))
    await asyncio.sleep(0)  # "x" runs alone, held by the gate; "b" and "c" queue behind it
    queued = [asyncio.create_task(commit.submit(name)) for name in ("b", "c")]
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await first == "X"
    # Two queued fill a group: taken at once, and the service looks busy for a moment.
    assert await asyncio.wait_for(asyncio.gather(*queued), 5) == ["B", "C"]
    assert recorder.groups == [["b", "c"]]
    await asyncio.sleep(BUSY_SPELL_S * 1.5)  # a pause
    assert await asyncio.wait_for(commit.submit("d"), 5) == "D"
    assert recorder.alone == ["x", "d"]
