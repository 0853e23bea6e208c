"""Cash in and out through a bank: top-ups, withdrawals of sales proceeds and credit
repayments, each a saga whose state survives restarts.

Recording a flow is idempotent per key (a withdrawal's hold is posted in the same
transaction). Then the flow is driven: ask the bank (by reference, first, once a call
went unanswered; the bank is idempotent by reference anyway), persist CONFIRMED, and
post the ledger movement together with COMPLETED and the event — or, when the bank
rejects it, REVERTED (releasing a withdrawal's hold). Every step is a guarded
transition, so runners in several processes finish a flow exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable
from datetime import datetime

import orjson
import structlog
from furima.payments.v1 import events_pb2
from furima.types.v1 import money_pb2
from sqlalchemy import Connection

from libs.clock import Clock
from libs.errors import NotFound
from libs.events import Outbox
from libs.ids import new_ulid
from libs.pb import timestamp
from libs.storage import Database
from services.payments.domain.bank import (
    BankAnswer,
    BankOutcome,
    BankTransfer,
    BankTransferKind,
    BankTransferStatus,
    CashRequest,
    completion_draft,
    hold_draft,
    instruction_for,
    new_flow,
    release_draft,
    retry_delay,
    validate_repayment,
    validate_top_up,
    validate_withdrawal,
)
from services.payments.domain.idempotency import request_hash
from services.payments.service.bank_gateway import BankError, BankGateway, BankTimeout
from services.payments.service.idempotency import IdempotentCalls
from services.payments.service.ledger import Ledger
from services.payments.store import bank_transfers as flows_repo

log = structlog.get_logger("furima.payments.cash")

Finish = Callable[[Connection], BankTransfer | None]
"""A final step: the guarded transition with its posting and event, or None when another
runner made the transition first."""


def _fingerprint(request: CashRequest) -> str:
    return request_hash(
        {
            "user_id": request.user_id,
            "amount": request.amount,
            "currency": request.currency,
            "bank_account": request.bank_account,
        }
    )


def bank_transfer_event(flow: BankTransfer, at: datetime) -> events_pb2.BankTransferEvent:
    """The event of a flow that reached a final state."""
    return events_pb2.BankTransferEvent(
        bank_transfer_id=flow.bank_transfer_id,
        kind=flow.kind.value,
        status=flow.status.value,
        user_id=flow.user_id,
        amount=money_pb2.Money(amount=flow.amount, currency=flow.currency),
        fee=money_pb2.Money(amount=flow.fee, currency=flow.currency) if flow.fee else None,
        bank_reference=flow.bank_reference or "",
        failure_reason=flow.failure_reason,
        occurred_at=timestamp(at),
    )


class CashFlows:
    """Top-ups, withdrawals and bank repayments of credit, and the runner that finishes them.

    ``bank_timeout`` bounds one bank call (past it the call counts as unanswered);
    ``concurrency`` bounds how many flows one round drives at once.
    """

    def __init__(
        self,
        db: Database,
        ledger: Ledger,
        calls: IdempotentCalls,
        outbox: Outbox,
        clock: Clock,
        bank: BankGateway,
        payout_fee: int,
        *,
        bank_timeout: float = 5.0,
        concurrency: int = 8,
    ) -> None:
        if payout_fee < 0:
            raise ValueError("the payout fee is not negative")
        self._db = db
        self._ledger = ledger
        self._calls = calls
        self._outbox = outbox
        self._clock = clock
        self._bank = bank
        self._payout_fee = payout_fee
        self._bank_timeout = bank_timeout
        self._concurrency = concurrency
        self._driving: dict[str, asyncio.Task[BankTransfer]] = {}
        self._runner: asyncio.Task[None] | None = None

    # --- starting flows ---------------------------------------------------------------

    async def top_up(self, caller: str, request: CashRequest) -> BankTransfer:
        """Move money from the user's bank account into their cash balance.

        Idempotent per (caller, key): a replay returns the flow first created, in its
        current state. INVALID_ARGUMENT for a malformed request or a reused key; ABORTED
        while the key is in flight. The flow is driven as far as the bank answers now.
        """
        validate_top_up(request)
        flow_id = await self._open(f"{caller}:TopUp", BankTransferKind.TOP_UP, request, 0)
        return await self._drive_in_call(flow_id)

    async def withdraw(self, caller: str, request: CashRequest) -> BankTransfer:
        """Pay sales proceeds out to the user's bank account, less the payout fee.

        The amount is held at once (FAILED_PRECONDITION ``INSUFFICIENT_FUNDS`` or
        ``WALLET_FROZEN`` otherwise, and nothing is recorded); otherwise as `top_up`.
        """
        validate_withdrawal(request, self._payout_fee)
        flow_id = await self._open(f"{caller}:Withdraw", BankTransferKind.WITHDRAWAL, request, self._payout_fee)
        return await self._drive_in_call(flow_id)

    def open_credit_repayment(
        self, conn: Connection, user_id: str, amount: int, currency: str, bank_account: str
    ) -> str:
        """Record a PENDING repayment of the user's credit line from their bank account,
        inside the caller's transaction (its idempotent effect); returns the flow's id.
        The runner (or `advance`, once committed) drives it. INVALID_ARGUMENT naming
        ``user_id``, ``amount.amount``, ``amount.currency`` or ``bank_account``.
        """
        request = CashRequest("", user_id, amount, currency, bank_account)
        validate_repayment(request)
        return self._record(conn, BankTransferKind.CREDIT_REPAYMENT, request, 0).bank_transfer_id

    async def _open(self, scope: str, kind: BankTransferKind, request: CashRequest, fee: int) -> str:
        def effect(conn: Connection) -> str:
            flow = self._record(conn, kind, request, fee)
            return orjson.dumps({"bank_transfer_id": flow.bank_transfer_id}).decode()

        stored = await self._calls.run_sync(scope, request.idempotency_key, _fingerprint(request), effect)
        return str(orjson.loads(stored)["bank_transfer_id"])

    def _record(self, conn: Connection, kind: BankTransferKind, request: CashRequest, fee: int) -> BankTransfer:
        flow = new_flow(new_ulid("btr_"), kind, request, fee, self._clock.now())
        if kind is BankTransferKind.WITHDRAWAL:
            # Refusals (short of sales, frozen wallet) raise here and roll everything back.
            posted = self._ledger.post(conn, hold_draft(flow))
            flow = dataclasses.replace(flow, hold_transfer_id=posted.transfer_id)
        flows_repo.insert_flow(conn, flow)
        return flow

    # --- reading and driving ----------------------------------------------------------

    async def get(self, bank_transfer_id: str) -> BankTransfer:
        """One flow as it stands; NOT_FOUND when there is none."""
        flow = await flows_repo.load(self._db, bank_transfer_id)
        if flow is None:
            raise NotFound(f"no bank transfer {bank_transfer_id!r}", metadata={"bank_transfer_id": bank_transfer_id})
        return flow

    async def of_user(
        self,
        user_id: str,
        *,
        kinds: frozenset[BankTransferKind],
        statuses: frozenset[BankTransferStatus],
        before: str | None,
        limit: int,
    ) -> list[BankTransfer]:
        """Up to ``limit`` of the user's flows, newest first, with ids below ``before`` when
        given, of ``kinds`` and ``statuses`` when any are given.
        """
        async with self._db.read() as conn:
            return await conn.run_sync(
                lambda c: flows_repo.of_user(c, user_id, kinds=kinds, statuses=statuses, before=before, limit=limit)
            )

    async def advance(self, bank_transfer_id: str) -> BankTransfer:
        """Drive one flow as far as the bank answers now; its state afterwards."""
        flow = await self.get(bank_transfer_id)
        if flow.is_final or (flow.status is BankTransferStatus.PENDING and flow.next_attempt_at > self._clock.now()):
            return flow  # nothing to do before the runner's next attempt
        return await asyncio.shield(self._drive_shared(flow))

    async def _drive_in_call(self, bank_transfer_id: str) -> BankTransfer:
        # The flow is recorded: whatever goes wrong driving it, the runner finishes it, and
        # the caller gets the state (a replay of the key shows the progress).
        try:
            return await self.advance(bank_transfer_id)
        except Exception as exc:  # noqa: BLE001 — the runner retries; the call reports the recorded flow
            log.warning("bank transfer not driven", bank_transfer_id=bank_transfer_id, error=str(exc))
            return await self.get(bank_transfer_id)

    def _drive_shared(self, flow: BankTransfer) -> asyncio.Task[BankTransfer]:
        # One driver per flow in this process (a call and the runner share it); across
        # processes the guarded transitions decide. The task outlives a cancelled call.
        task = self._driving.get(flow.bank_transfer_id)
        if task is None:
            task = asyncio.create_task(self._drive(flow), name=f"bank-transfer-{flow.bank_transfer_id}")
            self._driving[flow.bank_transfer_id] = task
            task.add_done_callback(lambda done: self._driven(flow.bank_transfer_id, done))
        return task

    def _driven(self, bank_transfer_id: str, task: asyncio.Task[BankTransfer]) -> None:
        self._driving.pop(bank_transfer_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.warning("bank transfer step failed", bank_transfer_id=bank_transfer_id, error=str(task.exception()))

    async def _drive(self, flow: BankTransfer) -> BankTransfer:
        while not flow.is_final:
            if flow.status is BankTransferStatus.CONFIRMED:
                flow = await self._complete(flow)
                continue
            if flow.next_attempt_at > self._clock.now():
                break
            try:
                answer = await self._ask_bank(flow)
            except BankError as exc:
                return await self._unanswered(flow, exc)
            if answer.outcome is BankOutcome.APPLIED:
                flow = await self._confirm(flow, answer)
            else:
                flow = await self._revert(flow, answer)
        return flow

    async def _ask_bank(self, flow: BankTransfer) -> BankAnswer:
        try:
            async with asyncio.timeout(self._bank_timeout):
                if flow.attempts:
                    # An earlier call went unanswered: the bank may have acted on it.
                    known = await self._bank.status(flow.bank_transfer_id)
                    if known is not None:
                        return known
                return await self._bank.submit(instruction_for(flow))
        except TimeoutError as exc:
            raise BankTimeout(f"the bank did not answer within {self._bank_timeout} s") from exc

    # --- the steps (each one transaction, each guarded) --------------------------------

    async def _step(self, flow: BankTransfer, to: BankTransfer) -> BankTransfer:
        moved = await self._db.write_sync(lambda conn: flows_repo.move(conn, flow, to))
        return to if moved else await self.get(flow.bank_transfer_id)

    async def _unanswered(self, flow: BankTransfer, error: BankError) -> BankTransfer:
        now = self._clock.now()
        attempts = flow.attempts + 1
        log.info("bank did not answer", bank_transfer_id=flow.bank_transfer_id, attempts=attempts, error=str(error))
        later = dataclasses.replace(
            flow, attempts=attempts, next_attempt_at=now + retry_delay(attempts), updated_at=now
        )
        return await self._step(flow, later)

    async def _confirm(self, flow: BankTransfer, answer: BankAnswer) -> BankTransfer:
        now = self._clock.now()
        confirmed = dataclasses.replace(
            flow,
            status=BankTransferStatus.CONFIRMED,
            bank_reference=answer.bank_reference,
            attempts=flow.attempts + 1,
            next_attempt_at=now,
            updated_at=now,
        )
        return await self._step(flow, confirmed)

    async def _complete(self, flow: BankTransfer) -> BankTransfer:
        def finish(conn: Connection) -> BankTransfer | None:
            now = self._clock.now()
            done = dataclasses.replace(flow, status=BankTransferStatus.COMPLETED, updated_at=now)
            # The guard first: a second runner stops here, before posting anything.
            if not flows_repo.move(conn, flow, done):
                return None
            credit = 0
            if flow.kind is BankTransferKind.CREDIT_REPAYMENT:
                credit = flows_repo.credit_balance(conn, flow.user_id, flow.currency)
            posted = self._ledger.post(conn, completion_draft(flow, credit))
            flows_repo.attach_posting(conn, flow.bank_transfer_id, posted.transfer_id)
            self._outbox.append_sync(conn, flow.user_id, bank_transfer_event(done, now))
            return dataclasses.replace(done, ledger_transfer_id=posted.transfer_id)

        return await self._finish(flow, finish)

    async def _revert(self, flow: BankTransfer, answer: BankAnswer) -> BankTransfer:
        def finish(conn: Connection) -> BankTransfer | None:
            now = self._clock.now()
            reverted = dataclasses.replace(
                flow,
                status=BankTransferStatus.REVERTED,
                bank_reference=answer.bank_reference or None,
                failure_reason=answer.reason or "REJECTED",
                attempts=flow.attempts + 1,
                updated_at=now,
            )
            if not flows_repo.move(conn, flow, reverted):
                return None
            if flow.kind is BankTransferKind.WITHDRAWAL:
                posted = self._ledger.post(conn, release_draft(flow))
                flows_repo.attach_posting(conn, flow.bank_transfer_id, posted.transfer_id)
                reverted = dataclasses.replace(reverted, ledger_transfer_id=posted.transfer_id)
            self._outbox.append_sync(conn, flow.user_id, bank_transfer_event(reverted, now))
            return reverted

        return await self._finish(flow, finish)

    async def _finish(self, flow: BankTransfer, finish: Finish) -> BankTransfer:
        final = await self._db.write_sync(finish)
        if final is None:
            return await self.get(flow.bank_transfer_id)
        self._outbox.notify()
        log.debug("bank transfer final", bank_transfer_id=flow.bank_transfer_id, status=final.status.value)
        return final

    # --- the runner ------------------------------------------------------------------

    async def run_due(self, limit: int = 100) -> int:
        """Drive every flow not final whose next attempt is due (at most ``limit``);
        returns how many changed state.
        """
        async with self._db.read() as conn:
            due = await flows_repo.due(conn, self._clock.now(), limit)
        gate = asyncio.Semaphore(self._concurrency)

        async def one(flow: BankTransfer) -> bool:
            async with gate:
                after = await asyncio.shield(self._drive_shared(flow))
            return after.status is not flow.status

        results = await asyncio.gather(*(one(flow) for flow in due), return_exceptions=True)
        for flow, result in zip(due, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("bank transfer round failed", bank_transfer_id=flow.bank_transfer_id, error=str(result))
        return sum(1 for result in results if result is True)

    async def _loop(self, interval: float) -> None:
        while True:
            try:
                moved = await self.run_due()
                if moved:
                    log.info("bank transfers advanced", flows=moved)
            except Exception as exc:  # noqa: BLE001 — the next round retries
                log.warning("bank transfer round failed", error=str(exc))
            await asyncio.sleep(interval)

    def start(self, interval: float) -> None:
        """Run a round every ``interval`` seconds until `stop` (flows left by a crash resume)."""
        self._runner = asyncio.create_task(self._loop(interval), name="payments-bank-transfers")

    async def stop(self) -> None:
        """Stop the rounds and the flows being driven (they resume on the next start)."""
        tasks = [t for t in (self._runner, *self._driving.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._runner = None
