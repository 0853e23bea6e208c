"""A Python load generator for PaymentService: every request needs its own idempotency
key, so h2load (which repeats one body) cannot drive it.

Worker processes (``spawn``), each with its own ``grpc.aio`` channel and share of the
in-flight requests, loop over CreatePayment (capture) and, for the hot-seller runs,
CompletePayment of each captured payment. All workers start together, run a warm-up,
then a measured window; a call counts in the window when it finishes inside it. Every
acknowledged call is counted, warm-up and drain included, so that the number of payments
the database holds can be checked against it afterwards.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import grpc
from furima.payments.v1 import payment_service_pb2 as pb
from furima.payments.v1 import payment_service_pb2_grpc as pb_grpc
from furima.types.v1 import money_pb2

from bench._h2load import BenchError, percentile
from bench._serve import BENCH_CURRENCY, bench_buyer

CALL_TIMEOUT_S = 30.0
HOT_SELLER = "usr_bench_hot_seller"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class LoadSpec:
    """One run of the load generator."""

    target: str
    """``host:port`` of the payments service."""
    token: str
    tag: str
    """Prefix of this run's idempotency keys and order ids (unique per run)."""
    workers: int
    in_flight: int
    """Requests in flight across all workers (each slot waits for its answer)."""
    warmup_s: float
    duration_s: float
    buyers: int
    sellers: int
    """Distinct sellers; 1 means every payment goes to `HOT_SELLER`."""
    complete: bool
    """Also CompletePayment each captured payment (credits the seller's sales account)."""


@dataclass(frozen=True)
class CallStats:
    """One RPC's calls that finished inside the measured window."""

    count: int
    per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True)
class LoadResult:
    """What one run measured."""

    seconds: float
    creates: CallStats
    completes: CallStats | None
    acknowledged_creates: int
    """CreatePayment calls answered OK, warm-up and drain included."""
    acknowledged_completes: int
    errors: dict[str, int]
    """``"CreatePayment UNAVAILABLE"`` → how many (any phase)."""
    statuses: dict[str, int]
    """Payment status of each acknowledged create."""
    risk: dict[str, int]
    """Risk decision of each acknowledged create."""
    client_cpu: float
    """CPUs the load generator's processes used over the window (1.0 = one core)."""
    server_cpu: dict[str, float] = field(default_factory=dict)
    """CPUs each server process used over the window."""
    machine_busy: float = 0.0
    """CPUs busy in total over the window (servers, client, database, anything else)."""


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def machine_busy_seconds() -> float:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / _CLK_TCK


class _Recorder:
    """One worker's tally."""

    def __init__(self, window: tuple[float, float]) -> None:
        self.window = window
        self.latencies: dict[str, list[float]] = {"CreatePayment": [], "CompletePayment": []}
        self.acknowledged: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.risk: Counter[str] = Counter()

    def ok(self, method: str, started: float, finished: float) -> None:
        self.acknowledged[method] += 1
        if self.window[0] <= finished < self.window[1]:
            self.latencies[method].append((finished - started) * 1000)


async def _slot(stub: pb_grpc.PaymentServiceAsyncStub, spec: LoadSpec, slot: int, rec: _Recorder) -> None:
    """One in-flight request after another until the window ends."""
    metadata = (("authorization", f"Bearer {spec.token}"),)
    n = 0
    while time.monotonic() < rec.window[1]:
        key = f"{spec.tag}-{slot}-{n}"
        # Slot s pays from buyers s, s + 32, s + 64...: payments in flight at once rarely share a buyer.
        buyer = bench_buyer((slot + spec.in_flight * n) % spec.buyers)
        seller = HOT_SELLER if spec.sellers == 1 else f"usr_bench_s{(slot * 7919 + n) % spec.sellers:05d}"
        n += 1
        request = pb.CreatePaymentRequest(
            idempotency_key=key,
            order_id=f"ord_{key}",
            buyer_id=buyer,
            seller_id=seller,
            amount=money_pb2.Money(amount=300 + 100 * (n % 18), currency=BENCH_CURRENCY),
            capture=True,
        )
        started = time.monotonic()
        try:
            created = await stub.CreatePayment(request, metadata=metadata, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            rec.errors[f"CreatePayment {exc.code().name}"] += 1
            await asyncio.sleep(0.01)  # a failing server must not turn the loop into a spin
            continue
        rec.ok("CreatePayment", started, time.monotonic())
        payment = created.payment
        rec.statuses[pb.PaymentStatus.Name(payment.status)] += 1
        rec.risk[payment.risk.decision] += 1
        if not spec.complete or payment.status != pb.PAYMENT_STATUS_CAPTURED:
            continue
        complete = pb.CompletePaymentRequest(idempotency_key=f"{key}-done", payment_id=payment.payment_id)
        started = time.monotonic()
        try:
            await stub.CompletePayment(complete, metadata=metadata, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            rec.errors[f"CompletePayment {exc.code().name}"] += 1
            await asyncio.sleep(0.01)
            continue
        rec.ok("CompletePayment", started, time.monotonic())


async def _drive(spec: LoadSpec, slots: range, pipe: Connection) -> dict[str, Any]:
    async with grpc.aio.insecure_channel(spec.target) as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
        stub = pb_grpc.PaymentServiceStub(channel)
        pipe.send("ready")
        start_at: float = await asyncio.to_thread(pipe.recv)
        window = (start_at + spec.warmup_s, start_at + spec.warmup_s + spec.duration_s)
        rec = _Recorder(window)
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        cpu: list[float] = []

        async def sample_cpu() -> None:
            for moment in window:
                await asyncio.sleep(max(0.0, moment - time.monotonic()))
                cpu.append(time.process_time())

        await asyncio.gather(sample_cpu(), *(_slot(stub, spec, slot, rec) for slot in slots))
    return {
        "latencies": rec.latencies,
        "acknowledged": dict(rec.acknowledged),
        "errors": dict(rec.errors),
        "statuses": dict(rec.statuses),
        "risk": dict(rec.risk),
        "cpu_s": cpu[1] - cpu[0],
    }


def _worker(spec: LoadSpec, slots: range, pipe: Connection) -> None:
    """Entry point of a worker process: drive its slots, send the tally back."""
    try:
        pipe.send(asyncio.run(_drive(spec, slots, pipe)))
    except Exception as exc:  # noqa: BLE001 — reported to the parent, which fails the run
        pipe.send({"failed": f"{type(exc).__name__}: {exc}"})


def call_stats(latencies: list[float], seconds: float) -> CallStats:
    latencies.sort()
    return CallStats(
        count=len(latencies),
        per_s=len(latencies) / seconds,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        max_ms=latencies[-1] if latencies else float("nan"),
    )


Samples = list[tuple[dict[str, float], float]]


def run_workers(
    target: Callable[[Any, range, Connection], None], spec: Any, servers: dict[str, int]
) -> tuple[list[dict[str, Any]], Samples]:
    """Start ``spec.workers`` processes running ``target(spec, slots, pipe)`` that share
    ``spec.in_flight`` slots, release them together, sample the servers' CPU (and the
    machine's) at the edges of the measured window, and return the workers' reports and
    the two samples. A worker that fails or does not answer is a BenchError.
    """
    ctx = multiprocessing.get_context("spawn")
    share, extra = divmod(spec.in_flight, spec.workers)
    bounds = [0]
    for w in range(spec.workers):
        bounds.append(bounds[-1] + share + (1 if w < extra else 0))
    pipes: list[Connection] = []
    procs = []
    for w in range(spec.workers):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=target, args=(spec, range(bounds[w], bounds[w + 1]), child), daemon=True)
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    try:
        for pipe in pipes:
            msg = pipe.recv() if pipe.poll(60) else "no answer within 60 s"
            if msg != "ready":
                raise BenchError(f"a load-generator worker did not start: {msg}")
        start_at = time.monotonic() + 0.2
        for pipe in pipes:
            pipe.send(start_at)
        window = (start_at + spec.warmup_s, start_at + spec.warmup_s + spec.duration_s)
        samples = []
        for moment in window:
            time.sleep(max(0.0, moment - time.monotonic()))
            samples.append(({name: proc_cpu_seconds(pid) for name, pid in servers.items()}, machine_busy_seconds()))
        reports = []
        for pipe in pipes:
            if not pipe.poll(CALL_TIMEOUT_S + 30):
                raise BenchError("a load-generator worker did not report back")
            reports.append(pipe.recv())
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
    failed = [r["failed"] for r in reports if "failed" in r]
    if failed:
        raise BenchError(f"load-generator worker failed: {failed[0]}")
    return reports, samples


def drive(spec: LoadSpec, servers: dict[str, int]) -> LoadResult:
    """Run ``spec`` against the payments service; ``servers`` (name → pid) have their CPU
    use over the measured window recorded.
    """
    reports, samples = run_workers(_worker, spec, servers)
    seconds = spec.duration_s
    total: dict[str, Counter[str]] = {k: Counter() for k in ("acknowledged", "errors", "statuses", "risk")}
    latencies: dict[str, list[float]] = {"CreatePayment": [], "CompletePayment": []}
    for report in reports:
        for key, counter in total.items():
            counter.update(report[key])
        for method, values in report["latencies"].items():
            latencies[method].extend(values)
    (cpu0, busy0), (cpu1, busy1) = samples
    return LoadResult(
        seconds=seconds,
        creates=call_stats(latencies["CreatePayment"], seconds),
        completes=call_stats(latencies["CompletePayment"], seconds) if spec.complete else None,
        acknowledged_creates=total["acknowledged"]["CreatePayment"],
        acknowledged_completes=total["acknowledged"]["CompletePayment"],
        errors=dict(total["errors"]),
        statuses=dict(total["statuses"]),
        risk=dict(total["risk"]),
        client_cpu=sum(r["cpu_s"] for r in reports) / seconds,
        server_cpu={name: (cpu1[name] - cpu0[name]) / seconds for name in servers},
        machine_busy=(busy1 - busy0) / seconds,
    )
