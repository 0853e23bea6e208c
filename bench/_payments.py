"""Payments: committed payments per second through gRPC at 32 in flight, on SQLite and on
PostgreSQL, with many sellers and with one hot seller; the ledger verified after each run.

The stack is real: an ID service, a TnS service (RiskService assesses every
authorization) and a payments process per scenario on a fresh database whose buyers are
funded before it starts. The load comes from `bench._loadgen`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import grpc
from furima.id.v1 import oauth_service_pb2, oauth_service_pb2_grpc
from furima.payments.v1 import ledger_service_pb2, ledger_service_pb2_grpc
from furima.payments.v1 import payment_service_pb2 as pb
from furima.payments.v1 import payment_service_pb2_grpc as pb_grpc
from furima.types.v1 import money_pb2

from bench._h2load import BenchError
from bench._loadgen import HOT_SELLER, LoadResult, LoadSpec, drive
from bench._procs import ServerProcess
from bench._serve import BENCH_CURRENCY, bench_buyer

CREATE_METHOD = "/furima.payments.v1.PaymentService/CreatePayment"
COMPLETE_METHOD = "/furima.payments.v1.PaymentService/CompletePayment"
BENCH_SCOPES = "payments.write payments.read payments.ledger.admin"
POSTGRES_ENV = "FURIMA_BENCH_POSTGRES_URL"
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


class PaymentsPlan(NamedTuple):
    """How hard and how long each payments scenario runs."""

    workers: int = 2
    """Load-generator processes (they share the in-flight requests)."""
    in_flight: int = 32
    warmup_s: float = 3.0
    duration_s: float = 15.0
    buyers: int = 2_000
    sellers: int = 500
    """Sellers of the many-sellers scenarios."""
    cash: int = 1_000_000
    """Each buyer's starting cash (JPY); payments are 300-2,000 JPY."""

    def load(self, target: str, token: str, tag: str, *, sellers: int, complete: bool) -> LoadSpec:
        """The load of the plan against ``target``."""
        return LoadSpec(
            target=target,
            token=token,
            tag=tag,
            workers=self.workers,
            in_flight=self.in_flight,
            warmup_s=self.warmup_s,
            duration_s=self.duration_s,
            buyers=self.buyers,
            sellers=sellers,
            complete=complete,
        )


QUICK_PAYMENTS = PaymentsPlan(warmup_s=1.0, duration_s=4.0, buyers=500)


@dataclass(frozen=True)
class Scenario:
    """One payments run."""

    key: str
    label: str
    postgres: bool
    hot_seller: bool
    """One seller for every payment, and each captured payment completed (the seller's
    sales account is then the hot row)."""
    risk: bool
    """TnS RiskService assesses each authorization (otherwise: unassessed, fail-open)."""


SCENARIOS = (
    Scenario("many_sqlite", "many sellers, SQLite", postgres=False, hot_seller=False, risk=True),
    Scenario("many_sqlite_no_tns", "many sellers, SQLite, no TnS", postgres=False, hot_seller=False, risk=False),
    Scenario("hot_sqlite", "one hot seller, SQLite", postgres=False, hot_seller=True, risk=True),
    Scenario("hot_postgres", "one hot seller, PostgreSQL", postgres=True, hot_seller=True, risk=True),
)  # fmt: skip


@dataclass(frozen=True)
class Invariants:
    """What was checked after a run; each false item is one violation."""

    ledger_consistent: bool
    ledger: str
    """What VerifyLedger said."""
    payments_stored: int
    payments_acknowledged: int
    completed_stored: int
    completed_acknowledged: int
    seller_sales: int
    """The hot seller's sales balance (0 without a hot seller)."""
    seller_owed: int
    """What the completed payments owe the hot seller: captured - refunded - fee."""

    @property
    def violations(self) -> list[str]:
        """Each invariant that does not hold, said in words."""
        found = []
        if not self.ledger_consistent:
            found.append(f"ledger inconsistent: {self.ledger}")
        if self.payments_stored != self.payments_acknowledged:
            found.append(f"{self.payments_stored:,} payments stored, {self.payments_acknowledged:,} acknowledged")
        if self.completed_stored != self.completed_acknowledged:
            found.append(f"{self.completed_stored:,} completed stored, {self.completed_acknowledged:,} acknowledged")
        if self.seller_sales != self.seller_owed:
            found.append(
                f"hot seller's sales balance {self.seller_sales:,}, completed payments owe {self.seller_owed:,}"
            )
        return found


@dataclass(frozen=True)
class PaymentsRun:
    """One scenario's measurement and checks."""

    scenario: Scenario
    load: LoadResult
    invariants: Invariants


@dataclass
class PaymentsOutcome:
    """Every payments scenario of one bench run."""

    plan: PaymentsPlan
    runs: list[PaymentsRun] = field(default_factory=list)
    floor: LoadResult | None = None
    """The same load against `bench._serve.CannedPayments` (one hot seller)."""
    skipped: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    def check(self, label: str, ok: bool, detail: str, *, fatal: bool = True) -> None:
        """Record a verification; a failed fatal one stops the bench (its numbers would mean nothing)."""
        self.checks.append(f"{label}: {detail}")
        print(f"  check  {label}: {detail}", flush=True)
        if fatal and not ok:
            raise BenchError(f"{label} failed: {detail}")

    def run(self, key: str) -> PaymentsRun | None:
        """The run of scenario ``key``, if it ran."""
        return next((r for r in self.runs if r.scenario.key == key), None)


def run_payments(workdir: Path, plan: PaymentsPlan) -> PaymentsOutcome:
    """Every payments scenario against one ID and one TnS process (PostgreSQL skipped,
    with the reason, when it cannot be reached).
    """
    outcome = PaymentsOutcome(plan)
    print("[payments 0] the floor: bare grpc.aio, canned answers", flush=True)
    outcome.floor = _floor(workdir / "payments-floor", plan, outcome)
    with ServerProcess("id", workdir / "payments-id") as id_server:
        info = id_server.info
        tns_args = ("--id-port", str(id_server.port), f"--tns-secret={info['tns_secret']}")
        with ServerProcess("tns", workdir / "payments-tns", args=tns_args) as tns:
            token = asyncio.run(_bench_token(id_server.port, info["client_id"], info["client_secret"]))
            stack = _Stack(workdir, id_server, tns, token, outcome)
            for n, scenario in enumerate(SCENARIOS, 1):
                print(f"[payments {n}/{len(SCENARIOS)}] {scenario.label}", flush=True)
                if not scenario.postgres:
                    sqlite = workdir / scenario.key / "payments.db"
                    outcome.runs.append(stack.run(scenario, f"sqlite+aiosqlite:///{sqlite}"))
                    continue
                admin, problem = _postgres_admin()
                if admin is None:
                    outcome.skipped.append(f"{scenario.label}: skipped, {problem}")
                    print(f"  skipped: {problem}", flush=True)
                    continue
                with _postgres_database(admin) as url:
                    outcome.runs.append(stack.run(scenario, url))
    return outcome


def _floor(workdir: Path, plan: PaymentsPlan, outcome: PaymentsOutcome) -> LoadResult:
    """The hot-seller load against a plain grpc.aio server that answers from the request
    alone: what gRPC and the load generator cost here, for the runs to be compared with.
    """
    with ServerProcess("payments_floor", workdir) as server:
        # No token: nothing is authenticated.
        spec = plan.load(f"127.0.0.1:{server.port}", "", "bench-floor", sellers=1, complete=True)
        load = drive(spec, {"payments": server.pid})
    _print_load(load)
    completes = load.completes.per_s if load.completes else 0.0
    outcome.check(
        "floor: answers",
        not load.errors and load.acknowledged_creates == load.acknowledged_completes > 0,
        f"{load.acknowledged_creates:,} created, {load.acknowledged_completes:,} completed, errors {load.errors}"
        f" ({completes:,.0f} completed/s)",
    )
    return load


class _Stack:
    """Runs scenarios against the shared ID and TnS processes."""

    def __init__(
        self, workdir: Path, id_server: ServerProcess, tns: ServerProcess, token: str, outcome: PaymentsOutcome
    ) -> None:
        self.workdir = workdir
        self.id_server = id_server
        self.tns = tns
        self.token = token
        self.outcome = outcome

    def run(self, scenario: Scenario, database_url: str) -> PaymentsRun:
        """Start payments on ``database_url``, check one payment, load it, verify it."""
        plan = self.outcome.plan
        args = (
            *("--id-port", str(self.id_server.port), f"--payments-secret={self.id_server.info['payments_secret']}"),
            *("--tns-target", f"127.0.0.1:{self.tns.port}" if scenario.risk else ""),
            *("--database-url", database_url, "--buyers", str(plan.buyers), "--cash", str(plan.cash)),
        )
        with ServerProcess("payments", self.workdir / scenario.key, args=args, startup_timeout=120) as payments:
            target = f"127.0.0.1:{payments.port}"
            sample = asyncio.run(_sample_payment(target, self.token, scenario.hot_seller))
            created, completed = sample[0], sample[1:]
            ok = created.status == pb.PAYMENT_STATUS_CAPTURED
            ok &= created.risk.decision == ("APPROVE" if scenario.risk else "UNASSESSED")
            ok &= [p.status for p in completed] == ([pb.PAYMENT_STATUS_COMPLETED] if scenario.hot_seller else [])
            statuses = " then ".join(pb.PaymentStatus.Name(p.status).removeprefix("PAYMENT_STATUS_") for p in sample)
            self.outcome.check(
                f"{scenario.key}: stub call",
                ok,
                f"{statuses} (risk {created.risk.decision}); {plan.buyers:,} buyers funded in"
                f" {float(payments.info['seed_s']):.1f} s before the service started",
            )
            payments.mark_log()
            sellers = 1 if scenario.hot_seller else plan.sellers
            spec = plan.load(target, self.token, f"bench-{scenario.key}", sellers=sellers, complete=scenario.hot_seller)
            servers = {"payments": payments.pid, "id": self.id_server.pid}
            if scenario.risk:
                servers["tns"] = self.tns.pid
            load = drive(spec, servers)
            _print_load(load)
            invariants = self._verify(scenario, target, database_url, load, extra_completes=len(sample) - 1)
            self._check_access_log(scenario, payments, load)
            return PaymentsRun(scenario, load, invariants)

    def _check_access_log(self, scenario: Scenario, payments: ServerProcess, load: LoadResult) -> None:
        """The server's access log must show one OK line per acknowledged call, and the
        calls that failed with their codes.
        """
        methods = [("CreatePayment", CREATE_METHOD, load.acknowledged_creates)]
        if scenario.hot_seller:
            methods.append(("CompletePayment", COMPLETE_METHOD, load.acknowledged_completes))
        for name, method, acknowledged in methods:
            failed = {k.split()[1]: n for k, n in load.errors.items() if k.split()[0] == name}
            expected = {"OK": acknowledged, **failed} if acknowledged else failed
            codes = payments.access_codes(method)
            self.outcome.check(
                f"{scenario.key}: {name} status",
                dict(codes) == expected,
                f"access log shows {dict(codes)}; the client saw {expected}",
                fatal=False,
            )

    def _verify(
        self, scenario: Scenario, target: str, database_url: str, load: LoadResult, extra_completes: int
    ) -> Invariants:
        report = asyncio.run(_verify_ledger(target, self.token))
        stored = asyncio.run(_stored(database_url))
        ledger = (
            f"consistent, {report.accounts_checked:,} accounts, {report.entries_checked:,} entries"
            if report.consistent
            else f"{len(report.discrepancies)} balance discrepancies, {len(report.unbalanced_transfers)} unbalanced"
            f" transfers, sums {[(m.currency, m.amount) for m in report.currency_sums]}"
        )
        invariants = Invariants(
            ledger_consistent=report.consistent,
            ledger=ledger,
            payments_stored=stored.payments,
            payments_acknowledged=load.acknowledged_creates + 1,  # + the sample payment
            completed_stored=stored.completed,
            completed_acknowledged=load.acknowledged_completes + extra_completes,
            seller_sales=stored.seller_sales,
            seller_owed=stored.seller_owed,
        )
        violations = invariants.violations
        detail = (
            f"VerifyLedger {ledger}; {stored.payments:,} payments stored,"
            f" {invariants.payments_acknowledged:,} acknowledged (the first call included; the load's answers:"
            f" {_counts(load.statuses)}, risk {_counts(load.risk)})"
        )
        if scenario.hot_seller:
            detail += (
                f"; {stored.completed:,} completed, {invariants.completed_acknowledged:,} acknowledged;"
                f" hot seller's sales {stored.seller_sales:,} JPY = what the completed payments owe"
            )
        self.outcome.check(
            f"{scenario.key}: invariants",
            not violations,
            detail if not violations else "VIOLATED: " + "; ".join(violations),
            fatal=False,
        )
        return invariants


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {name.removeprefix('PAYMENT_STATUS_')}" for name, n in sorted(counts.items()))


def _print_load(load: LoadResult) -> None:
    c = load.creates
    line = f"  {c.per_s:,.0f} payments/s (create p50 {c.p50_ms:.1f} ms, p99 {c.p99_ms:.1f} ms)"
    if load.completes is not None:
        d = load.completes
        line += f", {d.per_s:,.0f} completed/s (complete p50 {d.p50_ms:.1f} ms, p99 {d.p99_ms:.1f} ms)"
    cpu = ", ".join(f"{name} {v:.2f}" for name, v in load.server_cpu.items())
    print(f"{line}\n  CPU: client {load.client_cpu:.2f}, {cpu}; machine busy {load.machine_busy:.2f}", flush=True)
    if load.errors:
        print(f"  errors: {load.errors}", flush=True)


async def _bench_token(id_port: int, client_id: str, secret: str) -> str:
    request = oauth_service_pb2.TokenRequest(
        grant_type="client_credentials",
        client_id=client_id,
        client_secret=secret,
        scope=BENCH_SCOPES,
        audience=["furima.payments"],
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{id_port}") as channel:
        response = await oauth_service_pb2_grpc.OAuthServiceStub(channel).Token(request, timeout=10)
    return response.tokens.access_token


async def _sample_payment(target: str, token: str, complete: bool) -> list[pb.Payment]:
    """One payment through a Python stub before the load (and its completion)."""
    metadata = (("authorization", f"Bearer {token}"),)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.PaymentServiceStub(channel)
        request = pb.CreatePaymentRequest(
            idempotency_key="bench-sample",
            order_id="ord_bench_sample",
            buyer_id=bench_buyer(0),
            seller_id=HOT_SELLER if complete else "usr_bench_s00000",
            amount=money_pb2.Money(amount=1_000, currency=BENCH_CURRENCY),
            capture=True,
        )
        created = (await stub.CreatePayment(request, metadata=metadata, timeout=10)).payment
        if not complete or created.status != pb.PAYMENT_STATUS_CAPTURED:
            return [created]
        done = pb.CompletePaymentRequest(idempotency_key="bench-sample-done", payment_id=created.payment_id)
        return [created, (await stub.CompletePayment(done, metadata=metadata, timeout=10)).payment]


async def _verify_ledger(target: str, token: str) -> ledger_service_pb2.VerifyLedgerResponse:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = ledger_service_pb2_grpc.LedgerServiceStub(channel)
        return await stub.VerifyLedger(
            ledger_service_pb2.VerifyLedgerRequest(), metadata=(("authorization", f"Bearer {token}"),), timeout=120
        )


class _Stored(NamedTuple):
    payments: int
    completed: int
    seller_sales: int
    seller_owed: int


async def _stored(database_url: str) -> _Stored:
    """Counts read straight from the payments database (what was committed, whatever the
    client was told).
    """
    from sqlalchemy import func, select

    from libs.storage import Database
    from services.payments.domain.accounts import AccountKind, user_account
    from services.payments.store.tables import accounts, payments

    p = payments.c
    sales = user_account(HOT_SELLER, AccountKind.SALES, BENCH_CURRENCY).account_id
    db = Database(database_url)
    try:
        async with db.read() as conn:
            total = await conn.scalar(select(func.count()).select_from(payments))
            completed = await conn.scalar(select(func.count()).where(p.status == "COMPLETED"))
            owed = await conn.scalar(
                select(func.coalesce(func.sum(p.captured - p.refunded - p.fee), 0)).where(
                    p.seller_id == HOT_SELLER, p.status == "COMPLETED"
                )
            )
            balance = await conn.scalar(select(accounts.c.balance).where(accounts.c.id == sales))
    finally:
        await db.dispose()
    return _Stored(int(total or 0), int(completed or 0), int(balance or 0), int(owed or 0))


def _postgres_admin() -> tuple[str | None, str]:
    """The PostgreSQL URL to create the run's database through, or None and why not."""
    from sqlalchemy.engine import make_url

    url = os.environ.get(POSTGRES_ENV) or DEFAULT_POSTGRES
    shown = make_url(url).render_as_string(hide_password=True)
    where = f"{shown} ({POSTGRES_ENV})" if os.environ.get(POSTGRES_ENV) else f"{shown} (the default; {POSTGRES_ENV})"

    async def probe() -> None:
        import asyncpg

        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(dsn, timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
    except (TimeoutError, OSError, ImportError) as exc:
        return None, f"PostgreSQL is not reachable at {where}: {type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 — asyncpg's errors (auth, no database) all mean "cannot use it"
        return None, f"PostgreSQL at {where} refused the bench: {type(exc).__name__}: {exc}"
    return url, ""


@contextmanager
def _postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh database for one run (created and dropped as the tests do)."""
    from libs.testing import temporary_postgres_database

    database = temporary_postgres_database(admin_url)
    with asyncio.Runner() as runner:
        url = runner.run(database.__aenter__())
        try:
            yield url
        finally:
            runner.run(database.__aexit__(None, None, None))
