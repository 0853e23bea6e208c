"""What VerifyLedger reports: balances recomputed from entries, and the zero-sum rule."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Discrepancy:
    """An account whose stored balance is not the sum of its entries."""

    account_id: str
    currency: str
    stored: int
    computed: int


@dataclass(frozen=True)
class LedgerReport:
    """The outcome of a full verification."""

    discrepancies: tuple[Discrepancy, ...]
    unbalanced_transfers: tuple[tuple[str, str, int], ...]
    currency_sums: tuple[tuple[str, int], ...]
    accounts_checked: int
    entries_checked: int

    @property
    def consistent(self) -> bool:
        """No discrepancy, no unbalanced transfer, and every currency sums to zero."""
        return not self.discrepancies and not self.unbalanced_transfers and all(s == 0 for _, s in self.currency_sums)


def report(
    accounts: Iterable[tuple[str, str, int, int, int]],
    currency_sums: Iterable[tuple[str, int]],
    unbalanced: Iterable[tuple[str, str, int]],
) -> LedgerReport:
    """Build the report from (account id, currency, stored, computed, entries) rows, the
    per-currency sums and the unbalanced (transfer, currency, sum) triples.
    """
    rows = list(accounts)
    return LedgerReport(
        discrepancies=tuple(Discrepancy(a, c, s, t) for a, c, s, t, _ in rows if s != t),
        unbalanced_transfers=tuple(unbalanced),
        currency_sums=tuple(currency_sums),
        accounts_checked=len(rows),
        entries_checked=sum(n for *_, n in rows),
    )
