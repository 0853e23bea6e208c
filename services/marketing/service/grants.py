"""The reward queue's dispatcher: grants queued points through Payments GrantPoints.

A reward is queued in the transaction of the event that earned it. The dispatcher sends
it with the idempotency key ``campaign:{campaign}:{user}:{trigger event}`` and a request
fixed at queueing time, so a retry — after a timeout, a Payments outage or a crash of
this process — is the same request and Payments applies it once. Transient failures are
retried with backoff; a refusal (or too many attempts) fails the reward and gives its
budget back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import grpc
import structlog
from furima.payments.v1 import points_service_pb2 as points_pb
from furima.payments.v1 import points_service_pb2_grpc as points_grpc
from furima.types.v1 import money_pb2
from opentelemetry import propagate, trace
from sqlalchemy import Connection

from libs.clock import Clock
from libs.events import Outbox
from libs.pb import timestamp
from libs.periodic import Periodic
from libs.storage import Database
from services.marketing.domain.campaigns import grant_key
from services.marketing.service.campaign_engine import incentive_granted
from services.marketing.store import campaigns as store
from services.marketing.store.campaigns import Reward

log = structlog.get_logger("furima.marketing.grants")
_tracer = trace.get_tracer("furima.marketing")

MAX_ATTEMPTS = 30
_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.CANCELLED,
    }
)


class GrantRetry(Exception):
    """The grant may not have happened; try again later with the same request."""


class GrantRefused(Exception):
    """Payments refused the grant for good (the request itself is wrong)."""


class PointsGranter(Protocol):
    """Something that grants points idempotently per key."""

    async def grant(self, key: str, reward: Reward, description: str) -> str:
        """The grant id; GrantRetry or GrantRefused otherwise."""
        ...


class PaymentsPoints:
    """Payments PointsService over gRPC."""

    def __init__(self, channel: grpc.aio.Channel, timeout: float = 5.0) -> None:
        self._stub = points_grpc.PointsServiceStub(channel)
        self._timeout = timeout

    async def grant(self, key: str, reward: Reward, description: str) -> str:
        """Call GrantPoints (the campaign's budget account funds it)."""
        request = points_pb.GrantPointsRequest(
            idempotency_key=key,
            user_id=reward.user_id,
            amount=money_pb2.Money(amount=reward.amount, currency=reward.currency),
            campaign_id=reward.campaign_id,
            expires_at=timestamp(reward.expires_at),
            description=description,
        )
        try:
            response = await self._stub.GrantPoints(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _RETRYABLE:
                raise GrantRetry(f"{exc.code().name}: {exc.details()}") from exc
            raise GrantRefused(f"{exc.code().name}: {exc.details()}") from exc
        return response.grant.grant_id


def backoff(attempts: int) -> timedelta:
    """The wait before the next attempt: 1 s doubling, at most 5 minutes."""
    return timedelta(seconds=min(300.0, 2.0 ** max(attempts - 1, 0)))


@dataclass(frozen=True)
class _Result:
    """What Payments said about one reward."""

    reward: Reward
    grant_id: str | None
    error: str
    retry: bool = False


class GrantDispatcher:
    """Sends due rewards to Payments; safe in several processes (guarded transitions)."""

    def __init__(
        self, db: Database, clock: Clock, outbox: Outbox, granter: PointsGranter, *, concurrency: int = 16
    ) -> None:
        self._db = db
        self._clock = clock
        self._outbox = outbox
        self._granter = granter
        self._concurrency = concurrency
        # A commit that queued a reward wakes the dispatcher at once (the intake notifies
        # the outbox after every commit); the interval is the retry sweep.
        self._rounds = Periodic("marketing-grants", self.run_due, pause=outbox.wait)

    async def run_due(self, limit: int = 200) -> int:
        """Send every due reward once, up to ``concurrency`` at a time, and record all the
        outcomes in one write; returns how many were granted.
        """

        def due(conn: Connection) -> list[Reward]:
            return store.due_rewards(conn, self._clock.now(), limit)

        async with self._db.read() as conn:
            rewards = await conn.run_sync(due)
        if not rewards:
            return 0
        gate = asyncio.Semaphore(self._concurrency)

        async def send(reward: Reward) -> _Result:
            async with gate:
                return await self._send(reward)

        results = await asyncio.gather(*(send(reward) for reward in rewards))
        granted = await self._db.write_sync(lambda conn: sum(self._record(conn, r) for r in results))
        self._outbox.notify()
        return granted

    async def _send(self, reward: Reward) -> _Result:
        key = grant_key(reward.campaign_id, reward.user_id, reward.trigger_event_id)
        # The grant continues the trace of the event that earned it.
        parent = propagate.extract({"traceparent": reward.traceparent}) if reward.traceparent else None
        try:
            with _tracer.start_as_current_span("marketing.grant", context=parent, kind=trace.SpanKind.INTERNAL):
                return _Result(reward, await self._granter.grant(key, reward, f"campaign {reward.campaign_id}"), "")
        except GrantRetry as exc:
            if reward.attempts + 1 < MAX_ATTEMPTS:
                return _Result(reward, None, str(exc), retry=True)
            return _Result(reward, None, f"gave up: {exc}")
        except GrantRefused as exc:
            return _Result(reward, None, str(exc))

    def _record(self, conn: Connection, result: _Result) -> int:
        if result.grant_id is not None:
            return int(self._granted(conn, result.reward, result.grant_id))
        if result.retry:
            self._retry(conn, result.reward, result.error)
        else:
            self._fail(conn, result.reward, result.error)
        return 0

    def _granted(self, conn: Connection, reward: Reward, grant_id: str) -> bool:
        now = self._clock.now()
        if not store.finish_reward(conn, reward.reward_id, "GRANTED", grant_id, "", now):
            return False  # another dispatcher recorded it first (same grant, same key)
        self._outbox.append_sync(conn, reward.user_id, incentive_granted(reward, grant_id, now))
        return True

    def _retry(self, conn: Connection, reward: Reward, error: str) -> None:
        now = self._clock.now()
        log.warning("grant will be retried", reward_id=reward.reward_id, attempts=reward.attempts + 1, error=error)
        store.retry_reward(conn, reward.reward_id, error, now + backoff(reward.attempts + 1), now)

    def _fail(self, conn: Connection, reward: Reward, error: str) -> None:
        now = self._clock.now()
        if not store.finish_reward(conn, reward.reward_id, "FAILED", None, error, now):
            return
        log.error("grant failed", reward_id=reward.reward_id, error=error)
        store.release_budget(conn, reward.campaign_id, reward.amount)
        store.bump(
            conn,
            reward.campaign_id,
            reward.variant,
            {"incentives": -1, "granted": -reward.amount, "skip:DELIVERY_FAILED": 1},
        )

    def start(self, interval: float) -> None:
        """Send due rewards every ``interval`` seconds until `stop`."""
        self._rounds.start(interval)

    async def stop(self) -> None:
        """Stop sending."""
        await self._rounds.stop()
