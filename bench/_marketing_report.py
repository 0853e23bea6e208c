"""The marketing tables, notes and verdicts of the printed results and of docs/performance.md."""

from __future__ import annotations

from collections import Counter

from bench._campaigns import CAMPAIGNS, SEGMENTS
from bench._eventload import LatencyResult
from bench._marketing import Ingestion, MarketingOutcome

EVENTS_TARGET = 2_000.0
"""Events per second one marketing process must ingest with the campaigns running (issue 5)."""
TO_POINTS_P99_TARGET_MS = 1_000.0
"""Event-to-points p99 at the plan's first latency rate (issue 5)."""

_INGESTION_HEADER = [
    "marketing ingestion",
    "in flight",
    "events/s",
    "calls/s",
    "call p50 / p99 ms",
    "CPU client / marketing / payments / rest",
    "rewards queued: granted",
    "target",
]
_LATENCY_HEADER = [
    "marketing event → points",
    "points / sent",
    "p50 / p99 / max ms",
    "TrackEvent p50 / p99 ms",
    "CPU client / marketing / payments / rest",
    "target",
]


def _cpu(client: float, servers: dict[str, float], busy: float) -> str:
    """Cores over the window: client / marketing / payments / everything else busy (the ID service, other work)."""
    rest = max(0.0, busy - client - servers["marketing"] - servers["payments"])
    return f"{client:.2f} / {servers['marketing']:.2f} / {servers['payments']:.2f} / {rest:.2f}"


def _ingestion_target(run: Ingestion, marketing: MarketingOutcome) -> str:
    rate = run.load.events_per_s
    if run.key == "single":
        batches = marketing.run("batches")
        return f"batches / one by one = {batches.load.events_per_s / rate:.2f}" if batches and rate else ""
    met = "met" if rate >= EVENTS_TARGET else "MISSED"
    return f">= {EVENTS_TARGET:,.0f} events/s: {met} ({rate / EVENTS_TARGET:.2f} of it)"


def _ingestion_cells(run: Ingestion, marketing: MarketingOutcome) -> list[str]:
    load, calls = run.load, run.load.calls
    return [
        run.label,
        str(run.in_flight),
        f"{load.events_per_s:,.0f}",
        f"{calls.per_s:,.1f}",
        f"{calls.p50_ms:,.1f} / {calls.p99_ms:,.1f}",
        _cpu(load.client_cpu, load.server_cpu, load.machine_busy),
        f"{run.queue.queued:,}: {run.queue.granted_during:,} while loaded, {run.queue.granted_after:,} in"
        f" {run.queue.drained_s:.1f} s after",
        _ingestion_target(run, marketing),
    ]


def _latency_cells(result: LatencyResult, first: bool) -> list[str]:
    p99 = result.to_points_p99_ms
    target = ""
    if first:
        met = "met" if p99 <= TO_POINTS_P99_TARGET_MS else "MISSED"
        target = f"p99 <= {TO_POINTS_P99_TARGET_MS:,.0f} ms: {met}"
    return [
        f"first listings @ {result.rate:g}/s",
        f"{result.granted:,} / {result.sent:,}",
        f"{result.to_points_p50_ms:,.0f} / {p99:,.0f} / {result.to_points_max_ms:,.0f}",
        f"{result.ack_p50_ms:,.1f} / {result.ack_p99_ms:,.1f}",
        _cpu(result.client_cpu, result.server_cpu, result.machine_busy),
        target,
    ]


def _rows(marketing: MarketingOutcome) -> tuple[list[list[str]], list[list[str]]]:
    ingestion = [_ingestion_cells(run, marketing) for run in marketing.ingestion]
    latency = [_latency_cells(result, n == 0) for n, result in enumerate(marketing.latency)]
    return ingestion, latency


def _notes(marketing: MarketingOutcome, cpus: int) -> list[str]:
    plan = marketing.plan
    triggers = Counter(spec.event_type for spec in CAMPAIGNS)
    by_type = ", ".join(f"{n} on {event_type}" for event_type, n in triggers.most_common())
    points = sum(1 for spec in CAMPAIGNS if spec.points)
    notes = [
        f"Marketing load: {len(CAMPAIGNS)} campaigns running ({by_type}; {points} with points, the rest"
        f" message-only) over {len(SEGMENTS)} segments; events 45% item_listed, 45% app_opened, 10%"
        f" profile_updated, users drawn from {plan.users:,} per run; {plan.workers} load-generator processes,"
        f" {plan.warmup_s:g} s of warm-up, then the window ({plan.duration_s:g} s batched, two thirds of it one by"
        f" one). Event to points: TrackEvent of a first listing by a new user at a fixed rate for"
        f" {plan.latency_s:g} s, timed from the send to the PointsGranted on Payments' event stream; marketing's"
        f" worker interval (campaign clock, grant retries; a commit wakes the grant queue) {plan.worker_interval:g} s."
        " CPU is in cores"
        f" (of {cpus}); rest = everything else busy (the ID service, other work). Rewards queued: what the"
        " campaigns queued for Payments during the run (warm-up included), how many of them the grant dispatcher"
        " granted while the load ran, and how many after it, in how long.",
    ]
    if marketing.invariants is not None:
        found = len(marketing.invariants.violations)
        notes.append(
            f"Invariant violations after the marketing runs: {found} (target 0: {'met' if not found else 'MISSED'})."
        )
    batches, single = marketing.run("batches"), marketing.run("single")
    if batches and single and single.load.events_per_s:
        notes.append(
            f"Ratios: events/s batched / one by one = {batches.load.events_per_s / single.load.events_per_s:.2f};"
            f" batched events/s / target = {batches.load.events_per_s / EVENTS_TARGET:.2f}."
        )
    return notes


def _aligned(header: list[str], rows: list[list[str]], left: set[int]) -> list[str]:
    widths = [max(len(cells[i]) for cells in [header, *rows]) for i in range(len(header))]
    lines = []
    for n, cells in enumerate([header, *rows]):
        lines.append(
            "  ".join(
                c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()
        )
        if n == 0:
            lines.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
    return lines


def print_marketing(marketing: MarketingOutcome, cpus: int) -> None:
    """Print the two marketing tables and their notes."""
    ingestion, latency = _rows(marketing)
    if ingestion:
        print()
        print("\n".join(_aligned(_INGESTION_HEADER, ingestion, {0, len(_INGESTION_HEADER) - 1})))
    if latency:
        print()
        print("\n".join(_aligned(_LATENCY_HEADER, latency, {0, len(_LATENCY_HEADER) - 1})))
    for note in _notes(marketing, cpus):
        print(note)


def render_marketing(marketing: MarketingOutcome, cpus: int) -> list[str]:
    """The two marketing tables and their notes as Markdown lines."""
    ingestion, latency = _rows(marketing)
    lines: list[str] = []
    for header, rows in ((_INGESTION_HEADER, ingestion), (_LATENCY_HEADER, latency)):
        if rows:
            lines += ["", "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 2) + "---|"]
            lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    lines.append("")
    lines += _notes(marketing, cpus)
    return lines
