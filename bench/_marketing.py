"""Marketing: sustained event ingestion with 20 running campaigns evaluating every event
in real time, and the latency from a first listing to its points at Payments; the
grants, the stats and the ledger checked afterwards.

The stack is real: an ID service, a payments process and a marketing process (SQLite
each), marketing granting points through Payments `PointsService/GrantPoints` and
following Payments' stream. The segments and campaigns are `bench._campaigns`; the load
is `bench._eventload`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import grpc
from furima.id.v1 import oauth_service_pb2, oauth_service_pb2_grpc
from furima.marketing.v1 import event_service_pb2 as evt_pb
from furima.marketing.v1 import event_service_pb2_grpc as evt_grpc
from furima.payments.v1 import wallet_service_pb2 as wallet_pb
from furima.payments.v1 import wallet_service_pb2_grpc as wallet_grpc

from bench._campaigns import CAMPAIGNS, FIRST_LISTING, create_campaigns
from bench._eventload import (
    EventLoadResult,
    EventLoadSpec,
    LatencyResult,
    LatencySpec,
    drive_events,
    first_listing,
    measure_latency,
)
from bench._h2load import BenchError
from bench._marketing_checks import FED_BACK, Invariants, rewards_by_status, verify
from bench._procs import ServerProcess

BENCH_SCOPES = "marketing.events.write marketing.write marketing.read payments.read events.read payments.ledger.admin"
TRACK_EVENTS = "/furima.marketing.v1.EventService/TrackEvents"
TRACK_EVENT = "/furima.marketing.v1.EventService/TrackEvent"
SAMPLE_USER = "usr_bench_sample"
POINTS_WAIT_S = 30.0
"""How long a latency run waits for the last points after the last answer."""


class MarketingPlan(NamedTuple):
    """How hard and how long the marketing scenarios run."""

    workers: int = 2
    batch: int = 50
    """Events per TrackEvents call."""
    batch_in_flight: int = 4
    single_in_flight: int = 16
    warmup_s: float = 3.0
    duration_s: float = 15.0
    """The batched run's window; the one-by-one run's is two thirds of it."""
    users: int = 2_000
    """Users per ingestion run (each run has its own)."""
    latency_rates: tuple[float, ...] = (100.0, 20.0)
    """First listings per second of the latency runs: the target's rate, then a light one."""
    latency_s: float = 10.0
    worker_interval: float = 1.0
    """Marketing's campaign clock and grant-retry interval (FURIMA_MARKETING_WORKER_INTERVAL_S): the
    service's default; a commit that queues rewards wakes the grant dispatcher anyway."""
    drain_timeout_s: float = 90.0


QUICK_MARKETING = MarketingPlan(warmup_s=1.0, duration_s=4.0, users=500, latency_s=3.0)


@dataclass(frozen=True)
class Ingestion:
    """One ingestion run and the grant-queue drain after it."""

    key: str
    label: str
    batch: int
    in_flight: int
    load: EventLoadResult
    queue: Queue


@dataclass(frozen=True)
class Queue:
    """Marketing's reward queue over one run: what the campaigns queued, and when the
    dispatcher granted it.
    """

    queued: int
    """Rewards queued while the load ran (warm-up and drain included)."""
    granted_during: int
    """Rewards granted while the load ran."""
    granted_after: int
    """Rewards granted after the load stopped, until the queue was empty."""
    drained_s: float
    """Seconds from the end of the load to an empty queue."""
    left: int
    """Rewards still pending when the bench stopped waiting."""


@dataclass
class MarketingOutcome:
    """Every marketing scenario of one bench run."""

    plan: MarketingPlan
    ingestion: list[Ingestion] = field(default_factory=list)
    latency: list[LatencyResult] = field(default_factory=list)
    invariants: Invariants | None = None
    checks: list[str] = field(default_factory=list)

    def check(self, label: str, ok: bool, detail: str, *, fatal: bool = True) -> None:
        """Record a verification; a failed fatal one stops the bench (its numbers would mean nothing)."""
        self.checks.append(f"{label}: {detail}")
        print(f"  check  {label}: {detail}", flush=True)
        if fatal and not ok:
            raise BenchError(f"{label} failed: {detail}")

    def run(self, key: str) -> Ingestion | None:
        """The ingestion run ``key`` ("batches" or "single"), if it ran."""
        return next((r for r in self.ingestion if r.key == key), None)


def run_marketing(workdir: Path, plan: MarketingPlan) -> MarketingOutcome:
    """The ingestion runs (batches, then one by one), the latency runs, then the checks,
    against one ID, one payments and one marketing process.
    """
    outcome = MarketingOutcome(plan)
    with ServerProcess("id", workdir / "marketing-id") as id_server:
        info = id_server.info
        secret = info["payments_secret"]
        payments_args = ("--id-port", str(id_server.port), f"--payments-secret={secret}", "--buyers", "0")
        with ServerProcess("payments", workdir / "marketing-payments", args=payments_args) as payments:
            marketing_args = (
                *("--id-port", str(id_server.port), f"--marketing-secret={info['marketing_secret']}"),
                *("--payments-target", f"127.0.0.1:{payments.port}", "--worker-interval", str(plan.worker_interval)),
            )
            with ServerProcess("marketing", workdir / "marketing", args=marketing_args) as marketing:
                token = asyncio.run(_bench_token(id_server.port, info["client_id"], info["client_secret"]))
                stack = _Stack(workdir, outcome, token, id_server, payments, marketing)
                stack.run()
    return outcome


class _Stack:
    """Runs the scenarios against the three processes."""

    def __init__(
        self,
        workdir: Path,
        outcome: MarketingOutcome,
        token: str,
        id_server: ServerProcess,
        payments: ServerProcess,
        marketing: ServerProcess,
    ) -> None:
        self.outcome = outcome
        self.token = token
        self.payments = payments
        self.marketing = marketing
        self.marketing_target = f"127.0.0.1:{marketing.port}"
        self.payments_target = f"127.0.0.1:{payments.port}"
        self.marketing_url = f"sqlite+aiosqlite:///{workdir / 'marketing' / 'marketing.db'}"
        self.payments_url = f"sqlite+aiosqlite:///{workdir / 'marketing-payments' / 'payments.db'}"
        self.servers = {"marketing": marketing.pid, "payments": payments.pid, "id": id_server.pid}
        self.campaigns: dict[str, str] = {}

    def run(self) -> None:
        """Set up, check one batch end to end, then every scenario and the checks."""
        plan = self.outcome.plan
        started = time.perf_counter()
        self.campaigns = asyncio.run(self._setup())
        setup_s = time.perf_counter() - started
        points, waited = asyncio.run(self._sample())
        self.outcome.check(
            "marketing: stub call",
            points == 300,
            f"TrackEvents recorded a first listing and an app opening; {points} points in the wallet {waited:.2f} s"
            f" later; {len(self.campaigns)} campaigns running on {len({c.segment for c in CAMPAIGNS})} segments"
            f" (set up in {setup_s:.1f} s)",
        )
        self.marketing.mark_log()
        print(
            f"[marketing 1/3] TrackEvents, {plan.batch} events per call, {plan.batch_in_flight} in flight", flush=True
        )
        label = f"TrackEvents, {plan.batch} events per call"
        self._ingest("batches", label, plan.batch, plan.batch_in_flight, plan.duration_s)
        print(f"[marketing 2/3] TrackEvent, one event per call, {plan.single_in_flight} in flight", flush=True)
        self._ingest("single", "TrackEvent, one event per call", 1, plan.single_in_flight, plan.duration_s * 2 / 3)
        print("[marketing 3/3] event to points, first listings of new users", flush=True)
        for n, rate in enumerate(plan.latency_rates):
            self._latency(f"l{n}", rate)
        self._verify()

    def _ingest(self, key: str, label: str, batch: int, in_flight: int, seconds: float) -> None:
        """One ingestion run, then the wait for its grants."""
        plan = self.outcome.plan
        spec = EventLoadSpec(
            target=self.marketing_target,
            token=self.token,
            tag=f"{key[0]}{len(self.outcome.ingestion) + 1}",
            workers=plan.workers,
            in_flight=in_flight,
            batch=batch,
            users=plan.users,
            warmup_s=plan.warmup_s,
            duration_s=round(seconds),
        )
        before = asyncio.run(rewards_by_status(self.marketing_url))
        load = drive_events(spec, self.servers)
        _print_ingestion(load)
        queue = self._drain(f"after {key}", before)
        self.outcome.ingestion.append(Ingestion(key, label, batch, in_flight, load, queue))

    def _latency(self, tag: str, rate: float) -> None:
        """One latency run (it waits for the points itself)."""
        before = asyncio.run(rewards_by_status(self.marketing_url))
        spec = LatencySpec(
            marketing=self.marketing_target,
            payments=self.payments_target,
            token=self.token,
            campaign_id=self.campaigns[FIRST_LISTING],
            tag=tag,
            rate=rate,
            seconds=self.outcome.plan.latency_s,
            wait_s=POINTS_WAIT_S,
        )
        result = asyncio.run(measure_latency(spec, self.servers))
        _print_latency(result)
        self.outcome.latency.append(result)
        self._drain(f"after {rate:g}/s", before)

    async def _setup(self) -> dict[str, str]:
        async with grpc.aio.insecure_channel(self.marketing_target) as channel:
            return await create_campaigns(channel, self.token)

    async def _sample(self) -> tuple[int, float]:
        """One TrackEvents call through a Python stub, then the first listing's points in
        the wallet (polled with GetBalance): the pipeline works before it is loaded.
        """
        metadata = (("authorization", f"Bearer {self.token}"),)
        opened = evt_pb.UserEvent(event_id="sample-open", user_id=SAMPLE_USER, type="app_opened")
        opened.occurred_at.FromDatetime(datetime.now(UTC))
        request = evt_pb.TrackEventsRequest(events=[first_listing("sample-listing", SAMPLE_USER), opened])
        async with (
            grpc.aio.insecure_channel(self.marketing_target) as m_channel,
            grpc.aio.insecure_channel(self.payments_target) as p_channel,
        ):
            answer = await evt_grpc.EventServiceStub(m_channel).TrackEvents(request, metadata=metadata, timeout=10)
            if answer.recorded != 2:
                raise BenchError(f"TrackEvents recorded {answer.recorded} of 2 events")
            started = time.monotonic()
            wallet = wallet_grpc.WalletServiceStub(p_channel)
            points = 0
            while points < 300 and time.monotonic() - started < 10:
                balance = await wallet.GetBalance(
                    wallet_pb.GetBalanceRequest(user_id=SAMPLE_USER), metadata=metadata, timeout=10
                )
                points = sum(b.balance.amount for b in balance.balances if b.bucket == wallet_pb.BUCKET_POINTS)
                await asyncio.sleep(0.02)
        return points, time.monotonic() - started

    def _drain(self, when: str, before: dict[str, int]) -> Queue:
        """Wait until marketing's reward queue is empty (every reward granted or failed)
        and every grant has come back through Payments' stream, so the next run starts
        from a quiet service; ``before`` is the queue by status before the run.
        """
        timeout = self.outcome.plan.drain_timeout_s
        started = time.monotonic()
        ended = counts = asyncio.run(rewards_by_status(self.marketing_url))
        while _busy(counts) and time.monotonic() - started < timeout:
            time.sleep(0.25)
            counts = asyncio.run(rewards_by_status(self.marketing_url))
        seconds = time.monotonic() - started
        queue = Queue(
            queued=_rewards(ended) - _rewards(before),
            granted_during=ended.get("GRANTED", 0) - before.get("GRANTED", 0),
            granted_after=counts.get("GRANTED", 0) - ended.get("GRANTED", 0),
            drained_s=seconds if _busy(ended) else 0.0,
            left=counts.get("PENDING", 0),
        )
        detail = f"{queue.queued:,} rewards queued during the run, {queue.granted_during:,} granted while it ran"
        if queue.granted_after:
            detail += f", {queue.granted_after:,} in the {seconds:.1f} s after ({queue.granted_after / seconds:,.0f}/s)"
        lag = counts.get("GRANTED", 0) - counts.get(FED_BACK, 0)
        if queue.left or lag:
            detail += f"; after {timeout:g} s {queue.left:,} STILL PENDING, {lag:,} grants not yet back from Payments"
        else:
            detail += "; queue empty, every grant back from Payments' stream"
        self.outcome.check(f"marketing: reward queue {when}", not (queue.left or lag), detail, fatal=False)
        return queue

    def _verify(self) -> None:
        acknowledged = 2 + sum(run.load.acknowledged_events for run in self.outcome.ingestion)
        acknowledged += sum(result.acknowledged for result in self.outcome.latency)
        invariants = asyncio.run(
            verify(
                self.marketing_target,
                self.payments_target,
                self.token,
                self.marketing_url,
                self.payments_url,
                self.campaigns,
                acknowledged,
            )
        )
        self.outcome.invariants = invariants
        violations = invariants.violations
        self.outcome.check(
            "marketing: invariants",
            not violations,
            invariants.summary if not violations else "VIOLATED: " + "; ".join(violations),
            fatal=False,
        )
        batches, single = self.outcome.run("batches"), self.outcome.run("single")
        singles = sum(result.acknowledged for result in self.outcome.latency)
        expected = {
            TRACK_EVENTS: batches.load.acknowledged_calls if batches else 0,
            TRACK_EVENT: (single.load.acknowledged_calls if single else 0) + singles,
        }
        for method, calls in expected.items():
            codes = dict(self.marketing.access_codes(method))
            self.outcome.check(
                f"marketing: {method.rsplit('/', 1)[1]} status",
                codes == ({"OK": calls} if calls else {}),
                f"access log shows {codes}; the client was answered OK {calls:,} times",
                fatal=False,
            )


def _rewards(counts: dict[str, int]) -> int:
    return sum(n for status, n in counts.items() if status != FED_BACK)


def _busy(counts: dict[str, int]) -> bool:
    """Rewards still pending, or granted but not yet back from Payments' stream."""
    return bool(counts.get("PENDING", 0)) or counts.get(FED_BACK, 0) < counts.get("GRANTED", 0)


def _print_ingestion(load: EventLoadResult) -> None:
    c = load.calls
    cpu = ", ".join(f"{name} {v:.2f}" for name, v in load.server_cpu.items())
    print(
        f"  {load.events_per_s:,.0f} events/s, {c.per_s:,.1f} calls/s (p50 {c.p50_ms:.1f} ms, p99 {c.p99_ms:.1f} ms)"
        f"\n  CPU: client {load.client_cpu:.2f}, {cpu}; machine busy {load.machine_busy:.2f}",
        flush=True,
    )
    if load.errors:
        print(f"  errors: {load.errors}", flush=True)


def _print_latency(result: LatencyResult) -> None:
    cpu = ", ".join(f"{name} {v:.2f}" for name, v in result.server_cpu.items())
    print(
        f"  @ {result.rate:g}/s: {result.granted:,} of {result.sent:,} users got their points;"
        f" event to points p50 {result.to_points_p50_ms:,.0f} ms, p99 {result.to_points_p99_ms:,.0f} ms"
        f" (TrackEvent answered p50 {result.ack_p50_ms:.1f} ms, p99 {result.ack_p99_ms:.1f} ms)"
        f"\n  CPU: client {result.client_cpu:.2f}, {cpu}; machine busy {result.machine_busy:.2f}",
        flush=True,
    )
    if result.errors:
        print(f"  errors: {result.errors}", flush=True)


async def _bench_token(id_port: int, client_id: str, secret: str) -> str:
    """A client-credentials token for marketing and payments (every audience)."""
    request = oauth_service_pb2.TokenRequest(
        grant_type="client_credentials", client_id=client_id, client_secret=secret, scope=BENCH_SCOPES
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{id_port}") as channel:
        response = await oauth_service_pb2_grpc.OAuthServiceStub(channel).Token(request, timeout=10)
    return response.tokens.access_token
