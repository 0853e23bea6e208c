"""The payments process killed with SIGKILL in the middle of load, then restarted on the
same databases: every acknowledged operation is there, none is applied twice (every
request sent again replays or lands once), interrupted bank sagas finish, and the
ledger and the bank reconcile.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

import grpc
from furima.payments.v1 import cash_service_pb2 as cash_pb
from furima.payments.v1 import cash_service_pb2_grpc as cash_grpc
from furima.payments.v1 import ledger_service_pb2 as ledger_pb
from furima.payments.v1 import ledger_service_pb2_grpc as ledger_grpc
from furima.payments.v1 import payment_service_pb2 as pay_pb
from furima.payments.v1 import payment_service_pb2_grpc as pay_grpc
from furima.types.v1 import money_pb2
from sqlalchemy import func, select

from libs.rpc import make_channel
from libs.storage import Database, is_postgres
from libs.testing import postgres_admin_url, temporary_postgres_database
from services.payments.store.tables import bank_transfers, payments
from tests.helpers import bearer
from tests.stack import Stack
from tools.devstack import wait_serving

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
BUYERS = [f"usr_buyer{i:02d}" for i in range(12)]
SELLERS = [f"usr_seller{i}" for i in range(3)]
ACCOUNT = "0001-001-1234567"
LOAD_SECONDS = 1.5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Sent:
    """Everything the clients sent, and what was acknowledged."""

    creates: dict[str, pay_pb.CreatePaymentRequest] = field(default_factory=dict)
    completes: dict[str, pay_pb.CompletePaymentRequest] = field(default_factory=dict)
    top_ups: dict[str, cash_pb.TopUpRequest] = field(default_factory=dict)
    withdrawals: dict[str, cash_pb.WithdrawRequest] = field(default_factory=dict)
    acked_payments: dict[str, pay_pb.Payment] = field(default_factory=dict)
    acked_flows: dict[str, cash_pb.BankTransfer] = field(default_factory=dict)


class Stubs:
    """The payments stubs on one channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.payments = pay_grpc.PaymentServiceStub(channel)
        self.cash = cash_grpc.CashServiceStub(channel)
        self.ledger = ledger_grpc.LedgerServiceStub(channel)


@asynccontextmanager
async def _payments_process(env: dict[str, str], port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.payments.main", env=env, cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await wait_serving(port, within=60)
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await proc.wait()


def _money(amount: int) -> money_pb2.Money:
    return money_pb2.Money(amount=amount, currency="JPY")


async def _load(stubs: Stubs, token: str, sent: Sent, stop: asyncio.Event, worker: int) -> None:
    """One client: payments (captured at once), completions, top-ups and withdrawals."""
    rng = random.Random(worker)
    counter = itertools.count()
    md = bearer(token)
    while not stop.is_set():
        key = f"w{worker}-{next(counter)}"
        roll = rng.random()
        try:
            if roll < 0.55:
                request = pay_pb.CreatePaymentRequest(
                    idempotency_key=key, order_id=f"ord_{key}", buyer_id=rng.choice(BUYERS),
                    seller_id=rng.choice(SELLERS), amount=_money(rng.randint(100, 3000)), capture=True,
                )  # fmt: skip
                sent.creates[key] = request
                payment = (await stubs.payments.CreatePayment(request, metadata=md, timeout=5)).payment
                sent.acked_payments[key] = payment
            elif roll < 0.75 and sent.acked_payments:
                target = rng.choice(list(sent.acked_payments.values()))
                complete = pay_pb.CompletePaymentRequest(
                    idempotency_key=f"done-{target.payment_id}", payment_id=target.payment_id
                )
                sent.completes[complete.idempotency_key] = complete
                await stubs.payments.CompletePayment(complete, metadata=md, timeout=5)
            elif roll < 0.9:
                top_up = cash_pb.TopUpRequest(
                    idempotency_key=key,
                    user_id=rng.choice(BUYERS),
                    amount=_money(rng.randint(1000, 5000)),
                    bank_account=ACCOUNT,
                )
                sent.top_ups[key] = top_up
                sent.acked_flows[key] = (await stubs.cash.TopUp(top_up, metadata=md, timeout=5)).bank_transfer
            else:
                withdraw = cash_pb.WithdrawRequest(
                    idempotency_key=key,
                    user_id=rng.choice(SELLERS),
                    amount=_money(rng.randint(300, 900)),
                    bank_account=ACCOUNT,
                )
                sent.withdrawals[key] = withdraw
                sent.acked_flows[key] = (await stubs.cash.Withdraw(withdraw, metadata=md, timeout=5)).bank_transfer
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.CANCELLED,
            ):
                await asyncio.sleep(0.05)  # the process is gone: the request may or may not have landed
            elif exc.code() not in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED):
                # Refusals (not enough money, completed already, one completion key in flight) are fine.
                raise


async def _unless_refused(call: Callable[[], Awaitable[T]]) -> T | None:
    """The call's response, or None when it was refused as FAILED_PRECONDITION (the state
    did not allow it: not enough money, completed already). ABORTED (the key still held
    by a transaction of the killed process, until PostgreSQL notices) is retried, as a
    client would; anything else fails the test.
    """
    for _ in range(100):
        try:
            return await call()
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.FAILED_PRECONDITION:
                return None
            if exc.code() is not grpc.StatusCode.ABORTED:
                raise
        await asyncio.sleep(0.1)
    raise AssertionError("the key stayed in flight")


async def _resend(stubs: Stubs, token: str, sent: Sent) -> dict[str, str]:
    """Every request again under its key: acknowledged ones must replay the first answer.
    Returns the bank transfer id of every top-up and withdrawal that exists.
    """
    md = bearer(token)
    for key, request in sent.creates.items():
        created = await _unless_refused(partial(stubs.payments.CreatePayment, request, metadata=md))
        if created is None:
            assert key not in sent.acked_payments  # not enough money: it never happened
        elif key in sent.acked_payments:
            assert created.payment == sent.acked_payments[key], "a replay must return the acknowledged payment"
    for complete in sent.completes.values():
        await _unless_refused(partial(stubs.payments.CompletePayment, complete, metadata=md))
    flows: dict[str, str] = {}
    for key, top_up in sent.top_ups.items():
        topped = await _unless_refused(partial(stubs.cash.TopUp, top_up, metadata=md))
        assert topped is not None
        flows[key] = topped.bank_transfer.bank_transfer_id
    for key, withdraw in sent.withdrawals.items():
        withdrawn = await _unless_refused(partial(stubs.cash.Withdraw, withdraw, metadata=md))
        if withdrawn is None:
            assert key not in sent.acked_flows
        else:
            flows[key] = withdrawn.bank_transfer.bank_transfer_id
    for key, acked in sent.acked_flows.items():
        assert flows[key] == acked.bank_transfer_id, "a replay must return the acknowledged flow"
    return flows


async def _all_final(stubs: Stubs, token: str, flows: dict[str, str], within: float = 30.0) -> None:
    final = {cash_pb.BANK_TRANSFER_STATUS_COMPLETED, cash_pb.BANK_TRANSFER_STATUS_REVERTED}
    deadline = asyncio.get_running_loop().time() + within
    pending = set(flows.values())
    while pending:
        for flow_id in list(pending):
            get = cash_pb.GetBankTransferRequest(bank_transfer_id=flow_id)
            if (await stubs.cash.GetBankTransfer(get, metadata=bearer(token))).bank_transfer.status in final:
                pending.discard(flow_id)
        assert asyncio.get_running_loop().time() < deadline, f"{len(pending)} sagas never finished"
        await asyncio.sleep(0.2)


async def test_sigkill_mid_load_loses_nothing_and_doubles_nothing(
    stack: Stack, database_url: str, tmp_path: Path
) -> None:
    """Kill -9 under load, restart: acknowledged work is there, resent work lands once, sagas finish, books balance."""
    if is_postgres(database_url):
        admin = postgres_admin_url()
        assert admin is not None
        async with temporary_postgres_database(admin) as url:
            await _scenario(stack, url, tmp_path)
    else:
        await _scenario(stack, f"sqlite+aiosqlite:///{tmp_path}/payments.db", tmp_path)


async def _scenario(stack: Stack, payments_url: str, tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "FURIMA_PAYMENTS_DATABASE_URL": payments_url,
        "FURIMA_PAYMENTS_PORT": str(port),
        "FURIMA_ID_TARGET": stack.id.address,
        "FURIMA_ISSUER": stack.id.container.config.issuer,
        "FURIMA_PAYMENTS_CLIENT_SECRET": stack.secrets["svc-payments"],
        "FURIMA_TNS_TARGET": "",
        "FURIMA_PAYMENTS_RISK_FAIL_OPEN_MAX": "1000000",
        "FURIMA_BANK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/bank.db",
        "FURIMA_BANK_LATENCY_MS": "20",
        "FURIMA_PAYMENTS_SAGA_INTERVAL_S": "0.2",
    }
    token = await stack.client_token("furima-dev", scope="payments.write payments.read payments.ledger.admin")
    sent = Sent()
    # The buyers' money comes in through the bank first (a bank that answers every call).
    async with _payments_process(env, port), make_channel(f"127.0.0.1:{port}") as channel:
        stubs = Stubs(channel)
        seeds = {}
        for user in BUYERS:
            request = cash_pb.TopUpRequest(
                idempotency_key=f"seed-{user}", user_id=user, amount=_money(50_000), bank_account=ACCOUNT
            )
            sent.top_ups[request.idempotency_key] = request
            seeds[user] = (await stubs.cash.TopUp(request, metadata=bearer(token))).bank_transfer.bank_transfer_id
        await _all_final(stubs, token, seeds)

    # Under load, with a bank that loses 30% of its answers (sagas wait for the runner), kill -9.
    lossy = {**env, "FURIMA_BANK_TIMEOUT_RATE": "0.3"}
    async with _payments_process(lossy, port) as proc, make_channel(f"127.0.0.1:{port}") as channel:
        stubs = Stubs(channel)
        stop = asyncio.Event()
        workers = [asyncio.create_task(_load(stubs, token, sent, stop, w)) for w in range(12)]
        await asyncio.sleep(LOAD_SECONDS)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*workers)

    assert len(sent.acked_payments) > 20, "the load did not get going"
    in_flight = [f for f in sent.acked_flows.values() if f.status == cash_pb.BANK_TRANSFER_STATUS_PENDING]
    assert in_flight, "no saga was left in flight at the kill"
    # Restarted (its bank answers again): the runner resumes what the kill interrupted.
    async with _payments_process(env, port), make_channel(f"127.0.0.1:{port}") as channel:
        stubs = Stubs(channel)
        for key, acked in sent.acked_payments.items():
            found = (
                await stubs.payments.GetPayment(
                    pay_pb.GetPaymentRequest(payment_id=acked.payment_id), metadata=bearer(token)
                )
            ).payment
            assert (found.amount, found.buyer_id) == (acked.amount, acked.buyer_id), key
        flows = await _resend(stubs, token, sent)
        await _all_final(stubs, token, flows)

        verified = await stubs.ledger.VerifyLedger(ledger_pb.VerifyLedgerRequest(), metadata=bearer(token))
        assert verified.consistent, verified
        reconciled = await stubs.cash.ReconcileBank(cash_pb.ReconcileBankRequest(), metadata=bearer(token))
        assert (reconciled.consistent, reconciled.in_flight) == (True, 0), reconciled

    # None applied twice: one payment per create key that landed, one flow per cash key.
    db = Database(payments_url)
    try:
        async with db.read() as conn:
            orders = (await conn.execute(select(payments.c.order_id, func.count()).group_by(payments.c.order_id))).all()
            flow_count = await conn.scalar(select(func.count()).select_from(bank_transfers))
    finally:
        await db.dispose()
    assert all(n == 1 for _, n in orders), [o for o in orders if o[1] != 1]
    assert {f"ord_{k}" for k in sent.acked_payments} <= {o for o, _ in orders}
    assert flow_count == len(flows)
