"""What the marketing bench checks after its runs: nothing lost, nothing made up, every
grant exactly once.

Marketing's side is read from its database (the event log, the reward queue) and its
`CampaignService/GetCampaignStats`; Payments' side from its database (points lots,
account balances) and `LedgerService/VerifyLedger`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import grpc
from furima.marketing.v1 import campaign_service_pb2 as cmp_pb
from furima.marketing.v1 import campaign_service_pb2_grpc as cmp_grpc
from furima.payments.v1 import ledger_service_pb2, ledger_service_pb2_grpc

from bench._campaigns import CAMPAIGNS

_SHOWN = 3
"""Examples of a violation named in the report."""
FED_BACK = "FED_BACK"
"""The key of `rewards_by_status` counting the grants that came back through Payments' stream."""


@dataclass(frozen=True)
class Invariants:
    """What was checked after the marketing runs; each problem is one violation."""

    ledger_consistent: bool
    ledger: str
    """What VerifyLedger said."""
    events_stored: int
    """Events in marketing's log that came through EventService."""
    events_acknowledged: int
    rewards: dict[str, int]
    """Marketing's rewards by status (PENDING, GRANTED, FAILED)."""
    lots: int
    """Points grants at Payments."""
    points: int
    problems: tuple[str, ...]
    """Campaigns, users and accounts whose numbers disagree, said in words."""

    @property
    def violations(self) -> list[str]:
        """Each invariant that does not hold."""
        found = list(self.problems)
        if not self.ledger_consistent:
            found.append(f"ledger inconsistent: {self.ledger}")
        if self.events_stored != self.events_acknowledged:
            found.append(f"{self.events_stored:,} events stored, {self.events_acknowledged:,} acknowledged")
        unfinished = {status: n for status, n in self.rewards.items() if status not in ("GRANTED", FED_BACK)}
        if unfinished:
            found.append(f"rewards not granted: {unfinished}")
        if self.rewards.get(FED_BACK, 0) != self.lots:
            found.append(f"{self.rewards.get(FED_BACK, 0):,} points_granted events fed back for {self.lots:,} lots")
        return found

    @property
    def summary(self) -> str:
        """The checks that passed, in words."""
        return (
            f"VerifyLedger {self.ledger}; {self.events_stored:,} events in the log = {self.events_acknowledged:,}"
            f" acknowledged; {self.rewards.get('GRANTED', 0):,} rewards granted = {self.lots:,} points lots at"
            f" Payments ({self.points:,} points), none pending or failed, each fed back once through Payments'"
            " stream; per campaign, GetCampaignStats incentives"
            " and points = Payments' lots and the budget account; every (campaign, user) holds the campaign's"
            " points exactly once; every wallet's points = its lots"
        )


async def rewards_by_status(marketing_url: str) -> dict[str, int]:
    """How many rewards marketing's queue holds in each status, and under ``FED_BACK`` how
    many ``points_granted`` events marketing has taken in from Payments' stream (one per
    grant, once the feed has caught up).
    """
    from sqlalchemy import func, select

    from libs.storage import Database
    from services.marketing.store.campaigns import campaign_rewards
    from services.marketing.store.facts import events

    db = Database(marketing_url)
    try:
        async with db.read() as conn:
            rows = await conn.execute(
                select(campaign_rewards.c.status, func.count()).group_by(campaign_rewards.c.status)
            )
            counts = {str(status): int(n) for status, n in rows}
            fed_back = await conn.scalar(select(func.count()).where(events.c.type == "points_granted"))
    finally:
        await db.dispose()
    return {**counts, FED_BACK: int(fed_back or 0)}


async def _marketing_side(marketing_url: str) -> tuple[int, Counter[tuple[str, str]], dict[str, int]]:
    """Events logged through the API; GRANTED points rewards per (campaign, user); rewards by status."""
    from sqlalchemy import func, select

    from libs.storage import Database
    from services.marketing.store.campaigns import campaign_rewards
    from services.marketing.store.facts import events

    r = campaign_rewards.c
    db = Database(marketing_url)
    try:
        async with db.read() as conn:
            stored = await conn.scalar(select(func.count()).where(events.c.source == "api"))
            granted: Counter[tuple[str, str]] = Counter()
            rows = await conn.execute(select(r.campaign_id, r.user_id).where(r.status == "GRANTED", r.kind == "points"))
            for campaign_id, user_id in rows:
                granted[(campaign_id, user_id)] += 1
    finally:
        await db.dispose()
    return int(stored or 0), granted, await rewards_by_status(marketing_url)


class _Payments:
    """Payments' side, read from its database."""

    def __init__(self) -> None:
        self.lots: dict[tuple[str, str], list[int]] = {}
        self.wallets: dict[str, int] = {}
        self.budgets: dict[str, int] = {}

    async def read(self, payments_url: str) -> None:
        from sqlalchemy import select

        from libs.storage import Database
        from services.payments.domain.accounts import AccountKind
        from services.payments.store.tables import accounts, points_lots

        a, p = accounts.c, points_lots.c
        db = Database(payments_url)
        try:
            async with db.read() as conn:
                for campaign_id, user_id, granted in await conn.execute(select(p.campaign_id, p.user_id, p.granted)):
                    self.lots.setdefault((campaign_id, user_id), []).append(int(granted))
                query = select(a.owner, a.kind, a.balance).where(
                    a.kind.in_([AccountKind.POINTS.value, AccountKind.POINTS_BUDGET.value])
                )
                for owner, kind, balance in await conn.execute(query):
                    if kind == AccountKind.POINTS.value:
                        self.wallets[owner] = int(balance)
                    else:
                        self.budgets[owner.removeprefix("cmp:")] = int(balance)
        finally:
            await db.dispose()


async def _stats(target: str, token: str, campaigns: dict[str, str]) -> dict[str, cmp_pb.GetCampaignStatsResponse]:
    metadata = (("authorization", f"Bearer {token}"),)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = cmp_grpc.CampaignServiceStub(channel)
        return {
            key: await stub.GetCampaignStats(
                cmp_pb.GetCampaignStatsRequest(campaign_id=campaign_id), metadata=metadata, timeout=30
            )
            for key, campaign_id in campaigns.items()
        }


async def _ledger(target: str, token: str) -> tuple[bool, str]:
    async with grpc.aio.insecure_channel(target) as channel:
        report = await ledger_service_pb2_grpc.LedgerServiceStub(channel).VerifyLedger(
            ledger_service_pb2.VerifyLedgerRequest(), metadata=(("authorization", f"Bearer {token}"),), timeout=120
        )
    if report.consistent:
        return True, f"consistent, {report.accounts_checked:,} accounts, {report.entries_checked:,} entries"
    return False, (
        f"{len(report.discrepancies)} balance discrepancies, {len(report.unbalanced_transfers)} unbalanced transfers,"
        f" sums {[(m.currency, m.amount) for m in report.currency_sums]}"
    )


def _campaign_problems(
    campaigns: dict[str, str], stats: dict[str, cmp_pb.GetCampaignStatsResponse], pay: _Payments
) -> list[str]:
    """Per campaign: its stats against Payments' lots and budget account."""
    problems = []
    for spec in CAMPAIGNS:
        campaign_id, total = campaigns[spec.key], stats[spec.key].total
        lots = [amount for (cid, _), amounts in pay.lots.items() if cid == campaign_id for amount in amounts]
        mine = (total.incentives_granted, total.granted.amount)
        theirs = (len(lots), sum(lots))
        if mine != theirs:
            problems.append(f"{spec.key}: stats say {mine[0]:,} incentives / {mine[1]:,} points, Payments {theirs}")
        if pay.budgets.get(campaign_id, 0) != -sum(lots):
            problems.append(f"{spec.key}: budget account {pay.budgets.get(campaign_id, 0):,}, lots {sum(lots):,}")
        if spec.points and sum(lots) > spec.budget:
            problems.append(f"{spec.key}: {sum(lots):,} points granted on a budget of {spec.budget:,}")
    return problems


def _grant_problems(campaigns: dict[str, str], granted: Counter[tuple[str, str]], pay: _Payments) -> list[str]:
    """Every (campaign, user): one lot of the campaign's points, matching one granted reward;
    every wallet's points equal to its lots.
    """
    points = {campaigns[spec.key]: spec.points for spec in CAMPAIGNS}
    wrong = [
        f"{user} holds {amounts} from {cid}"
        for (cid, user), amounts in sorted(pay.lots.items())
        if amounts != [points.get(cid, -1)] or granted[(cid, user)] != 1
    ]
    wrong += [
        f"{user}'s reward from {cid} has no lot" for (cid, user) in sorted(granted) if (cid, user) not in pay.lots
    ]
    per_user: Counter[str] = Counter()
    for (_, user), amounts in pay.lots.items():
        per_user[user] += sum(amounts)
    wallets = [
        f"{user}'s points {pay.wallets.get(user, 0):,}, lots {per_user[user]:,}"
        for user in sorted(set(per_user) | set(pay.wallets))
        if pay.wallets.get(user, 0) != per_user[user]
    ]
    problems = []
    if wrong:
        problems.append(f"{len(wrong):,} grants not exactly once, e.g. {'; '.join(wrong[:_SHOWN])}")
    if wallets:
        problems.append(f"{len(wallets):,} wallets off, e.g. {'; '.join(wallets[:_SHOWN])}")
    return problems


async def verify(
    marketing: str,
    payments: str,
    token: str,
    marketing_url: str,
    payments_url: str,
    campaigns: dict[str, str],
    acknowledged: int,
) -> Invariants:
    """Check the whole run: marketing's log, queue and stats against Payments' lots, wallets and ledger."""
    stored, granted, rewards = await _marketing_side(marketing_url)
    pay = _Payments()
    await pay.read(payments_url)
    stats = await _stats(marketing, token, campaigns)
    consistent, ledger = await _ledger(payments, token)
    problems = _campaign_problems(campaigns, stats, pay) + _grant_problems(campaigns, granted, pay)
    all_lots = [amount for amounts in pay.lots.values() for amount in amounts]
    return Invariants(
        ledger_consistent=consistent,
        ledger=ledger,
        events_stored=stored,
        events_acknowledged=acknowledged,
        rewards=rewards,
        lots=len(all_lots),
        points=sum(all_lots),
        problems=tuple(problems),
    )
