"""Load for the marketing bench: user events through EventService, in batches or one by
one, and the event-to-points latency of first listings.

Ingestion works as `bench._loadgen` does for payments: worker processes (``spawn``), each
with its own ``grpc.aio`` channel and share of the in-flight calls, start together, run a
warm-up, then a measured window; a call counts in the window when it finishes inside it,
and every acknowledged event is counted (warm-up and drain included) so that the event
log can be checked against it afterwards.

The latency probe runs in the bench's own process: first listings of new users at a fixed
rate (open loop: each is sent at its time whatever the answers to the earlier ones), and
a follow of Payments' event stream that timestamps the first ``PointsGranted`` of each of
those users from the timed campaign.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import Counter
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

import grpc
from furima.events.v1 import events_pb2, events_pb2_grpc
from furima.marketing.v1 import event_service_pb2 as pb
from furima.marketing.v1 import event_service_pb2_grpc as pb_grpc
from furima.payments.v1 import events_pb2 as payments_events

from bench._h2load import percentile
from bench._loadgen import CallStats, call_stats, machine_busy_seconds, proc_cpu_seconds, run_workers

CALL_TIMEOUT_S = 60.0
POINTS_GRANTED = "furima.payments.v1.PointsGranted"
CATEGORIES = ("books", "fashion", "shoes", "electronics", "toys", "sports", "home", "kids")
PRICES = (300, 800, 1_500, 3_000, 5_000, 8_000, 12_000, 25_000)
REGIONS = ("kanto", "kansai", "tohoku", "kyushu")
PLATFORMS = ("ios", "android", "web")


def bench_user(tag: str, n: int) -> str:
    """The user id of the ``n``-th user of a run (each run has users of its own)."""
    return f"usr_bench_{tag}_{n:05d}"


def bench_event(rng: random.Random, event_id: str, user_id: str) -> pb.UserEvent:
    """One event of the ingestion mix: 45% item_listed (a category of 8 and a price of 8),
    45% app_opened (a platform of 3), 10% profile_updated (a region of 4).
    """
    event = pb.UserEvent(event_id=event_id, user_id=user_id)
    properties = event.properties
    draw = rng.random()
    if draw < 0.45:
        event.type = "item_listed"
        properties["item_id"].string_value = f"itm_{event_id}"
        properties["category"].string_value = rng.choice(CATEGORIES)
        properties["price"].int_value = rng.choice(PRICES)
    elif draw < 0.9:
        event.type = "app_opened"
        properties["platform"].string_value = rng.choice(PLATFORMS)
    else:
        event.type = "profile_updated"
        properties["region"].string_value = rng.choice(REGIONS)
        properties["timezone"].string_value = "Asia/Tokyo"
    event.occurred_at.FromDatetime(datetime.now(UTC))
    return event


def first_listing(event_id: str, user_id: str) -> pb.UserEvent:
    """A 500 JPY listing in "home": of the bench's points campaigns only the first-listing one pays for it."""
    event = pb.UserEvent(event_id=event_id, user_id=user_id, type="item_listed")
    event.occurred_at.FromDatetime(datetime.now(UTC))
    event.properties["item_id"].string_value = f"itm_{event_id}"
    event.properties["category"].string_value = "home"
    event.properties["price"].int_value = 500
    return event


@dataclass(frozen=True)
class EventLoadSpec:
    """One ingestion run."""

    target: str
    """``host:port`` of the marketing service."""
    token: str
    tag: str
    """This run's prefix of event and user ids (unique per run)."""
    workers: int
    in_flight: int
    batch: int
    """Events per call: 1 sends TrackEvent, more send TrackEvents."""
    users: int
    warmup_s: float
    duration_s: float


@dataclass(frozen=True)
class EventLoadResult:
    """What one ingestion run measured."""

    seconds: float
    calls: CallStats
    """Calls that finished inside the window (per call: a batch or one event)."""
    events_per_s: float
    """Events acknowledged by calls that finished inside the window, per second."""
    acknowledged_calls: int
    """Calls answered OK, warm-up and drain included."""
    acknowledged_events: int
    """Events those calls recorded (new, not duplicates)."""
    errors: dict[str, int]
    client_cpu: float
    server_cpu: dict[str, float] = field(default_factory=dict)
    machine_busy: float = 0.0


class _Tally:
    def __init__(self, window: tuple[float, float]) -> None:
        self.window = window
        self.latencies: list[float] = []
        self.events_in_window = 0
        self.calls = 0
        self.events = 0
        self.errors: Counter[str] = Counter()

    def ok(self, recorded: int, started: float, finished: float) -> None:
        self.calls += 1
        self.events += recorded
        if self.window[0] <= finished < self.window[1]:
            self.latencies.append((finished - started) * 1000)
            self.events_in_window += recorded


async def _slot(stub: pb_grpc.EventServiceAsyncStub, spec: EventLoadSpec, slot: int, tally: _Tally) -> None:
    """One call after another until the window ends; users drawn uniformly from the run's pool."""
    metadata = (("authorization", f"Bearer {spec.token}"),)
    rng = random.Random(f"{spec.tag}-{slot}")
    n = 0
    while time.monotonic() < tally.window[1]:
        events = [
            bench_event(rng, f"{spec.tag}-{slot}-{n}-{i}", bench_user(spec.tag, rng.randrange(spec.users)))
            for i in range(spec.batch)
        ]
        n += 1
        method = "TrackEvent" if spec.batch == 1 else "TrackEvents"
        started = time.monotonic()
        try:
            if spec.batch == 1:
                single = await stub.TrackEvent(
                    pb.TrackEventRequest(event=events[0]), metadata=metadata, timeout=CALL_TIMEOUT_S
                )
                recorded = 0 if single.duplicate else 1
            else:
                batch = pb.TrackEventsRequest(events=events)
                recorded = (await stub.TrackEvents(batch, metadata=metadata, timeout=CALL_TIMEOUT_S)).recorded
        except grpc.aio.AioRpcError as exc:
            tally.errors[f"{method} {exc.code().name}"] += 1
            await asyncio.sleep(0.01)  # a failing server must not turn the loop into a spin
            continue
        tally.ok(recorded, started, time.monotonic())


async def _drive(spec: EventLoadSpec, slots: range, pipe: Connection) -> dict[str, Any]:
    async with grpc.aio.insecure_channel(spec.target) as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
        stub = pb_grpc.EventServiceStub(channel)
        pipe.send("ready")
        start_at: float = await asyncio.to_thread(pipe.recv)
        window = (start_at + spec.warmup_s, start_at + spec.warmup_s + spec.duration_s)
        tally = _Tally(window)
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        cpu: list[float] = []

        async def sample_cpu() -> None:
            for moment in window:
                await asyncio.sleep(max(0.0, moment - time.monotonic()))
                cpu.append(time.process_time())

        await asyncio.gather(sample_cpu(), *(_slot(stub, spec, slot, tally) for slot in slots))
    return {
        "latencies": tally.latencies,
        "events_in_window": tally.events_in_window,
        "calls": tally.calls,
        "events": tally.events,
        "errors": dict(tally.errors),
        "cpu_s": cpu[1] - cpu[0],
    }


def _worker(spec: EventLoadSpec, slots: range, pipe: Connection) -> None:
    """Entry point of a worker process: drive its slots, send the tally back."""
    try:
        pipe.send(asyncio.run(_drive(spec, slots, pipe)))
    except Exception as exc:  # noqa: BLE001 — reported to the parent, which fails the run
        pipe.send({"failed": f"{type(exc).__name__}: {exc}"})


def drive_events(spec: EventLoadSpec, servers: dict[str, int]) -> EventLoadResult:
    """Run ``spec`` against marketing; ``servers`` (name → pid) have their CPU use over
    the measured window recorded.
    """
    reports, samples = run_workers(_worker, spec, servers)
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    for report in reports:
        errors.update(report["errors"])
        latencies.extend(report["latencies"])
    (cpu0, busy0), (cpu1, busy1) = samples
    seconds = spec.duration_s
    return EventLoadResult(
        seconds=seconds,
        calls=call_stats(latencies, seconds),
        events_per_s=sum(r["events_in_window"] for r in reports) / seconds,
        acknowledged_calls=sum(r["calls"] for r in reports),
        acknowledged_events=sum(r["events"] for r in reports),
        errors=dict(errors),
        client_cpu=sum(r["cpu_s"] for r in reports) / seconds,
        server_cpu={name: (cpu1[name] - cpu0[name]) / seconds for name in servers},
        machine_busy=(busy1 - busy0) / seconds,
    )


@dataclass(frozen=True)
class LatencyResult:
    """What one latency run measured (milliseconds)."""

    rate: float
    """Listings offered per second."""
    seconds: float
    sent: int
    acknowledged: int
    granted: int
    """Users whose points arrived before the bench stopped waiting."""
    to_points_p50_ms: float
    to_points_p99_ms: float
    to_points_max_ms: float
    """From sending TrackEvent to the PointsGranted on Payments' stream (a user whose
    points never came counts as infinitely late)."""
    ack_p50_ms: float
    ack_p99_ms: float
    """From sending TrackEvent to its answer."""
    errors: dict[str, int]
    client_cpu: float
    server_cpu: dict[str, float] = field(default_factory=dict)
    machine_busy: float = 0.0


async def _last_sequence(
    stream: events_pb2_grpc.EventStreamServiceAsyncStub, metadata: tuple[tuple[str, str], ...]
) -> int:
    """The sequence of Payments' latest PointsGranted (0: none yet), read without following."""
    last = 0
    request = events_pb2.StreamEventsRequest(after_sequence=0, types=[POINTS_GRANTED], follow=False)
    async for response in stream.StreamEvents(request, metadata=metadata, timeout=CALL_TIMEOUT_S):
        last = response.event.sequence
    return last


@dataclass(frozen=True)
class LatencySpec:
    """One latency run."""

    marketing: str
    payments: str
    """``host:port`` of the two services."""
    token: str
    campaign_id: str
    """The campaign whose grants are timed."""
    tag: str
    """This run's prefix of event and user ids."""
    rate: float
    """First listings per second."""
    seconds: float
    wait_s: float
    """How long to wait for the last points after the last answer."""


def _cpu_sample(servers: dict[str, int]) -> tuple[dict[str, float], float, float]:
    """CPU seconds so far: each server's, the machine's busy total, this process's."""
    return {name: proc_cpu_seconds(pid) for name, pid in servers.items()}, machine_busy_seconds(), time.process_time()


class _LatencyProbe:
    """Sends the listings and watches Payments' stream for their points."""

    def __init__(self, spec: LatencySpec, events: pb_grpc.EventServiceAsyncStub) -> None:
        self.spec = spec
        self.events = events
        self.metadata = (("authorization", f"Bearer {spec.token}"),)
        self.sent: dict[str, float] = {}
        self.acked: dict[str, float] = {}
        self.granted: dict[str, float] = {}
        self.errors: Counter[str] = Counter()
        self.sending = True
        self.everyone = asyncio.Event()

    async def listen(self, follow: AsyncIterable[events_pb2.StreamEventsResponse]) -> None:
        """Timestamp the first PointsGranted of the timed campaign for each user sent."""
        async for response in follow:
            grant = payments_events.PointsGranted()
            response.event.payload.Unpack(grant)
            if grant.campaign_id == self.spec.campaign_id and grant.user_id in self.sent:
                self.granted.setdefault(grant.user_id, time.monotonic())
            if not self.sending and len(self.granted) >= len(self.acked):
                self.everyone.set()

    async def track(self, n: int) -> None:
        """The ``n``-th user's first listing."""
        user = bench_user(self.spec.tag, n)
        request = pb.TrackEventRequest(event=first_listing(f"{self.spec.tag}-{n}", user))
        self.sent[user] = time.monotonic()
        try:
            await self.events.TrackEvent(request, metadata=self.metadata, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            self.errors[f"TrackEvent {exc.code().name}"] += 1
            return
        self.acked[user] = time.monotonic()

    async def send_all(self) -> None:
        """The listings at the fixed rate (open loop), then the wait for the last points."""
        spec = self.spec
        started = time.monotonic()
        calls = []
        for n in range(round(spec.rate * spec.seconds)):
            await asyncio.sleep(max(0.0, started + n / spec.rate - time.monotonic()))
            calls.append(asyncio.create_task(self.track(n)))
        await asyncio.gather(*calls)

    async def wait_for_points(self) -> None:
        """Until every acknowledged user has their points, or ``wait_s`` passed."""
        self.sending = False
        if len(self.granted) < len(self.acked):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.everyone.wait(), self.spec.wait_s)


async def measure_latency(spec: LatencySpec, servers: dict[str, int]) -> LatencyResult:
    """Send ``spec.rate`` first listings of new users per second for ``spec.seconds`` and
    time each until Payments streams the points ``spec.campaign_id`` granted for it;
    ``servers`` (name → pid) have their CPU use over the sending recorded.
    """
    metadata = (("authorization", f"Bearer {spec.token}"),)
    async with (
        grpc.aio.insecure_channel(spec.marketing) as m_channel,
        grpc.aio.insecure_channel(spec.payments) as p_channel,
    ):
        probe = _LatencyProbe(spec, pb_grpc.EventServiceStub(m_channel))
        stream = events_pb2_grpc.EventStreamServiceStub(p_channel)
        after = await _last_sequence(stream, metadata)
        follow = stream.StreamEvents(
            events_pb2.StreamEventsRequest(after_sequence=after, types=[POINTS_GRANTED], follow=True), metadata=metadata
        )
        listener = asyncio.create_task(probe.listen(follow))
        await asyncio.sleep(0.2)  # the follow is open before the first listing goes out
        started, cpu0 = time.monotonic(), _cpu_sample(servers)
        await probe.send_all()
        elapsed, cpu1 = time.monotonic() - started, _cpu_sample(servers)
        await probe.wait_for_points()
        listener.cancel()
        follow.cancel()
    late = sorted(
        (probe.granted[user] - sent) * 1000 if user in probe.granted else math.inf for user, sent in probe.sent.items()
    )
    answered = sorted((acked - probe.sent[user]) * 1000 for user, acked in probe.acked.items())
    return LatencyResult(
        rate=spec.rate,
        seconds=elapsed,
        sent=len(probe.sent),
        acknowledged=len(probe.acked),
        granted=len(probe.granted),
        to_points_p50_ms=percentile(late, 50),
        to_points_p99_ms=percentile(late, 99),
        to_points_max_ms=late[-1] if late else math.nan,
        ack_p50_ms=percentile(answered, 50),
        ack_p99_ms=percentile(answered, 99),
        errors=dict(probe.errors),
        client_cpu=(cpu1[2] - cpu0[2]) / elapsed,
        server_cpu={name: (cpu1[0][name] - cpu0[0][name]) / elapsed for name in servers},
        machine_busy=(cpu1[1] - cpu0[1]) / elapsed,
    )
