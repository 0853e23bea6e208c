"""``python -m bench`` (``make bench``): run every benchmark once, print a table, update the docs."""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench._h2load import BenchError, ensure_h2load
from bench._marketing import QUICK_MARKETING, MarketingOutcome, MarketingPlan, run_marketing
from bench._payments import QUICK_PAYMENTS, PaymentsOutcome, PaymentsPlan, run_payments
from bench._procs import REFERENCE_ADDITIONS, ROOT, cpu_busy, reference_seconds
from bench._report import machine, print_table, update_docs
from bench._scenarios import QUICK, Plan, Runner

DOCS = ROOT / "docs" / "performance.md"
BUSY_WARNING = 0.15
BENCHMARKS = ["overhead", "id", "moderation", "payments", "marketing"]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; exit 1 if one could not run or a check failed."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run; numbers are noisier)")
    parser.add_argument("--docs", type=Path, default=DOCS, help=f"results file to update (default {DOCS})")
    parser.add_argument("--no-docs", action="store_true", help="only print; do not update the results file")
    parser.add_argument(
        "--only",
        choices=BENCHMARKS,
        action="append",
        help="run only these benchmarks (repeatable; implies --no-docs)",
    )
    args = parser.parse_args(argv)
    only = set(args.only or BENCHMARKS)
    payments: PaymentsOutcome | None = None
    marketing: MarketingOutcome | None = None
    started = datetime.now(UTC)
    try:
        h2load = ensure_h2load()
        busy = cpu_busy(2.0)
        background = f"{busy:.0%} of the CPUs were busy with other work in the 2 s before the run"
        before = reference_seconds()
        if busy > BUSY_WARNING:
            print(f"warning: {background}; numbers will be noisy", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="furima-bench-") as tmp:
            runner = Runner(h2load, Path(tmp), QUICK if args.quick else Plan())
            runner.outcome.background = background
            if "overhead" in only:
                runner.runtime_overhead()
            if "id" in only:
                runner.id_service()
            if "moderation" in only:
                runner.moderation()
            if "payments" in only:
                payments = run_payments(Path(tmp), QUICK_PAYMENTS if args.quick else PaymentsPlan())
            if "marketing" in only:
                marketing = run_marketing(Path(tmp), QUICK_MARKETING if args.quick else MarketingPlan())
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    after = reference_seconds()
    runner.outcome.background += (
        f"; CPU speed: {REFERENCE_ADDITIONS:,} Python additions took {before:.2f} s before the run and"
        f" {after:.2f} s after it (best of 3; results scale roughly with the inverse)"
    )
    host = machine(h2load)
    print_table(runner.outcome, host, payments, marketing)
    if not args.no_docs and not args.only:
        update_docs(args.docs, runner.outcome, host, started, quick=args.quick, payments=payments, marketing=marketing)
        print(f"\nresults written to {args.docs.relative_to(ROOT) if args.docs.is_relative_to(ROOT) else args.docs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
