"""The printed table and the results section of docs/performance.md."""

from __future__ import annotations

import os
import platform
import re
import shlex
import statistics
import subprocess
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

from bench._h2load import Result
from bench._loadgen import LoadResult
from bench._marketing import MarketingOutcome
from bench._marketing_report import print_marketing, render_marketing
from bench._payments import PaymentsOutcome, PaymentsRun
from bench._scenarios import Outcome

START = "<!-- bench:results:start -->"
END = "<!-- bench:results:end -->"
RATIO_TARGET = 0.70
TOKENS_TARGET = 1_000.0
DECISIONS_TARGET = 1_500.0
DECISION_P99_TARGET_MS = 20.0
PAYMENTS_SQLITE_TARGET = 800.0
PAYMENTS_POSTGRES_TARGET = 500.0


@dataclass(frozen=True)
class Machine:
    """Where the numbers come from."""

    cpus: int
    cpu_model: str
    kernel: str
    python: str
    grpcio: str
    h2load: str


def machine(h2load: str) -> Machine:
    """Describe this machine: usable CPUs (as nproc counts them), CPU model, software versions."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        model = found.group(1).strip() if found else model
    h2load_version = subprocess.run([h2load, "--version"], capture_output=True, text=True, check=False).stdout
    return Machine(
        cpus=len(os.sched_getaffinity(0)),
        cpu_model=model,
        kernel=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        grpcio=version("grpcio"),
        h2load=h2load_version.strip() or "unknown",
    )


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    name: str
    load: str
    result: Result
    target: str = ""


def _load(result: Result) -> str:
    argv = result.command
    opts = {argv[i]: argv[i + 1] for i in range(1, len(argv) - 1) if argv[i].startswith("-") and i + 1 < len(argv)}
    text = f"-c {opts['-c']} -m {opts['-m']}"
    if "--rps" in opts:
        text += f" --rps {opts['--rps']}"
    return text


def _rows(outcome: Outcome) -> list[Row]:
    r = outcome.results
    rows: list[Row] = []
    if "echo_bare" in r:
        ratio = r["echo_full"].req_per_s / r["echo_bare"].req_per_s
        rows += [
            Row("echo, bare grpc.aio", _load(r["echo_bare"]), r["echo_bare"]),
            Row("echo, full stack", _load(r["echo_full"]), r["echo_full"], _verdict(ratio >= RATIO_TARGET, ratio)),
            Row(f"echo, bare @ {outcome.fixed_rate}/s", _load(r["echo_bare_fixed"]), r["echo_bare_fixed"]),
            Row(f"echo, full @ {outcome.fixed_rate}/s", _load(r["echo_full_fixed"]), r["echo_full_fixed"]),
        ]
    if "token" in r:
        argon = outcome.argon2
        rows += [
            Row("client-credentials tokens", _load(r["token"]), r["token"], _tokens_verdict(r["token"].req_per_s)),
            Row(
                f"sign-ins (argon2id t={argon['time_cost']} m={argon['memory_cost']}KiB p={argon['parallelism']})",
                _load(r["signin"]),
                r["signin"],
            ),
        ]
    if "moderate_listing" in r:
        listings, messages, fixed = r["moderate_listing"], r["moderate_message"], r["moderate_fixed"]
        rows += [
            Row(
                "TnS ModerateContent, clean listings", _load(listings), listings, _decisions_verdict(listings.req_per_s)
            ),
            Row(
                "TnS ModerateContent, messages with a phone number",
                _load(messages),
                messages,
                _decisions_verdict(messages.req_per_s),
            ),
            Row("TnS ModerateContent, listings @ 500/s", _load(fixed), fixed, _latency_verdict(fixed.p99_ms)),
        ]
    return rows


def _decisions_verdict(rate: float) -> str:
    return f"target >= {DECISIONS_TARGET:,.0f}/s: {'met' if rate >= DECISIONS_TARGET else 'MISSED'}"


def _latency_verdict(p99: float) -> str:
    return f"target p99 <= {DECISION_P99_TARGET_MS:.0f} ms: {'met' if p99 <= DECISION_P99_TARGET_MS else 'MISSED'}"


def _verdict(ok: bool, ratio: float) -> str:
    return f"full/bare = {ratio:.2f} (target >= {RATIO_TARGET:.2f}: {'met' if ok else 'MISSED'})"


def _rounds(outcome: Outcome) -> str:
    ratios = ", ".join(f"{ratio:.2f}" for ratio in outcome.round_ratios)
    return f"full/bare per alternating round: {ratios} (median {statistics.median(outcome.round_ratios):.2f})"


def _tokens_verdict(tokens: float) -> str:
    return f"target >= {TOKENS_TARGET:,.0f}/s: {'met' if tokens >= TOKENS_TARGET else 'MISSED'}"


def _payments_target(run: PaymentsRun, payments: PaymentsOutcome) -> str:
    scenario, load = run.scenario, run.load
    goal = PAYMENTS_POSTGRES_TARGET if scenario.postgres else PAYMENTS_SQLITE_TARGET
    if scenario.hot_seller and load.completes is not None:
        met = load.completes.per_s >= goal
        return f"completed >= {goal:,.0f}/s: {'met' if met else 'MISSED'}"
    if not scenario.risk:
        assessed = payments.run("many_sqlite")
        if assessed is None:
            return ""
        return f"with TnS / without = {assessed.load.creates.per_s / load.creates.per_s:.2f}"
    return f"payments >= {goal:,.0f}/s: {'met' if load.creates.per_s >= goal else 'MISSED'}"


def _cpu(load: LoadResult) -> str:
    """Cores used over the window: client / payments / TnS / everything else busy."""
    tns = load.server_cpu.get("tns", 0.0)
    rest = max(0.0, load.machine_busy - load.client_cpu - load.server_cpu["payments"] - tns)
    return f"{load.client_cpu:.2f} / {load.server_cpu['payments']:.2f} / {tns:.2f} / {rest:.2f}"


def _invariants(run: PaymentsRun) -> str:
    found = len(run.invariants.violations)
    return "0 violations" if not found else f"{found} VIOLATED"


def _payments_cells(run: PaymentsRun) -> list[str]:
    return [*_load_cells(run.load), _invariants(run)]


def _load_cells(load: LoadResult) -> list[str]:
    creates, completes = load.creates, load.completes
    return [
        f"{creates.per_s:,.0f}",
        f"{creates.p50_ms:.1f} / {creates.p99_ms:.1f}",
        f"{completes.per_s:,.0f}" if completes else "",
        f"{completes.p50_ms:.1f} / {completes.p99_ms:.1f}" if completes else "",
        _cpu(load),
    ]


_FLOOR_LABEL = "floor: bare grpc.aio, canned answers, one hot seller"


def _payments_rows(payments: PaymentsOutcome) -> list[list[str]]:
    """The table's rows: the floor first (when it ran), then each scenario."""
    rows = [[_FLOOR_LABEL, *_load_cells(payments.floor), "", ""]] if payments.floor else []
    rows += [[run.scenario.label, *_payments_cells(run), _payments_target(run, payments)] for run in payments.runs]
    return rows


_PAYMENTS_HEADER = [
    "payments scenario",
    "payments/s",
    "create p50 / p99 ms",
    "completed/s",
    "complete p50 / p99 ms",
    "CPU client / payments / TnS / rest",
    "invariants",
    "target",
]


def _payments_notes(payments: PaymentsOutcome, cpus: int) -> list[str]:
    plan = payments.plan
    violations = sum(len(run.invariants.violations) for run in payments.runs)
    return [
        f"Payments load: the Python load generator (`bench._loadgen`), {plan.workers} processes sharing "
        f"{plan.in_flight} requests in flight, {plan.duration_s:g} s measured after {plan.warmup_s:g} s of warm-up; "
        f"{plan.buyers:,} buyers funded with {plan.cash:,} JPY each; every payment is one CreatePayment with "
        "capture (300-2,000 JPY); hot-seller runs then complete each one (CompletePayment). CPU is in cores "
        f"(of {cpus}) over the measured window; rest = everything else busy (ID service, PostgreSQL, other work). "
        "The floor: the same load, one hot seller, against a plain grpc.aio server answering from the request alone "
        "(`bench._serve.CannedPayments`: no authentication, database, risk call or ledger).",
        f"Invariant violations after the payments runs: {violations}"
        f" (target 0: {'met' if not violations else 'MISSED'}).",
        *_payments_ratios(payments),
        *payments.skipped,
    ]


def _payments_ratios(payments: PaymentsOutcome) -> list[str]:
    """The comparisons that say where the cost is: the risk call, the database, the hot row."""
    many, bare = payments.run("many_sqlite"), payments.run("many_sqlite_no_tns")
    hot, hot_pg = payments.run("hot_sqlite"), payments.run("hot_postgres")
    ratios = []
    if many and bare:
        ratios.append(
            f"TnS risk check: payments/s with / without = {many.load.creates.per_s / bare.load.creates.per_s:.2f}"
            f" (create p50 {many.load.creates.p50_ms:.1f} vs {bare.load.creates.p50_ms:.1f} ms)"
        )
    if hot and hot_pg and hot.load.completes and hot_pg.load.completes:
        ratios.append(
            "one hot seller, completed/s: PostgreSQL / SQLite ="
            f" {hot_pg.load.completes.per_s / hot.load.completes.per_s:.2f}"
        )
    floor = payments.floor.completes if payments.floor else None
    if floor and floor.per_s:
        of_floor = [
            f"{label} {run.load.completes.per_s / floor.per_s:.2f}"
            for label, run in (("SQLite", hot), ("PostgreSQL", hot_pg))
            if run and run.load.completes
        ]
        ratios.append(
            f"one hot seller, completed/s / the floor's ({floor.per_s:,.0f}): {', '.join(of_floor)}"
            f" (the PostgreSQL target is {PAYMENTS_POSTGRES_TARGET / floor.per_s:.2f} of it)"
        )
    if many and hot and hot.load.completes:
        ratios.append(
            "SQLite, completed payments/s of one hot seller / payments/s of many sellers ="
            f" {hot.load.completes.per_s / many.load.creates.per_s:.2f} (each completed payment is two calls)"
        )
    return [f"Ratios: {'; '.join(ratios)}."] if ratios else []


def _print_payments(payments: PaymentsOutcome, cpus: int) -> None:
    rows = _payments_rows(payments)
    widths = [max(len(cells[i]) for cells in [_PAYMENTS_HEADER, *rows]) for i in range(len(_PAYMENTS_HEADER))]
    print()
    for n, cells in enumerate([_PAYMENTS_HEADER, *rows]):
        aligned = (
            c.ljust(w) if i in (0, 7) else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        print("  ".join(aligned))
        if n == 0:
            print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    for note in _payments_notes(payments, cpus):
        print(note)


def print_table(
    outcome: Outcome,
    host: Machine,
    payments: PaymentsOutcome | None = None,
    marketing: MarketingOutcome | None = None,
) -> None:
    """Print the compact results table."""
    rows = _rows(outcome)
    print(f"\nfurima bench, one run: {host.cpus} CPUs ({host.cpu_model}), Python {host.python}, grpcio {host.grpcio}")
    if rows:
        width = max(len(row.name) for row in rows)
        header = f"{'benchmark':<{width}}  {'load':<18} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9}"
        print(header)
        print("-" * len(header))
        for row in rows:
            res = row.result
            print(
                f"{row.name:<{width}}  {row.load:<18} {res.req_per_s:>8,.0f} {res.p50_ms:>8.2f} {res.p99_ms:>8.2f}"
                f" {res.requests:>9,}" + (f"  {row.target}" if row.target else "")
            )
    if outcome.round_ratios:
        print(f"\n{_rounds(outcome)}")
    if payments is not None:
        _print_payments(payments, host.cpus)
    if marketing is not None:
        print_marketing(marketing, host.cpus)
    if outcome.access_log:
        print(f"logging: {outcome.access_log}")
    print(f"background: {outcome.background}")


def _command(result: Result, tokens: list[str]) -> str:
    """The h2load command line with the binary's path, ports, temp paths and tokens made generic."""
    parts = []
    for arg in result.command:
        text = arg
        for token in tokens:
            text = text.replace(token, "$TOKEN")
        text = re.sub(r"http://127\.0\.0\.1:\d+/", "http://127.0.0.1:$PORT/", text)
        if "/" in text and Path(text).is_absolute():
            text = Path(text).name
        parts.append(text)
    # Placeholders stay expandable: double quotes where a shell variable is left in.
    return " ".join(f'"{part}"' if "$" in part else shlex.quote(part) for part in parts)


def _render_payments(payments: PaymentsOutcome, cpus: int) -> list[str]:
    lines = ["", "| " + " | ".join(_PAYMENTS_HEADER) + " |", "|---|" + "---:|" * 6 + "---|"]
    for cells in _payments_rows(payments):
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += _payments_notes(payments, cpus)
    return lines


def render(
    outcome: Outcome,
    host: Machine,
    started: datetime,
    *,
    quick: bool,
    tokens: list[str],
    payments: PaymentsOutcome | None = None,
    marketing: MarketingOutcome | None = None,
) -> str:
    """The results section (between the markers) as Markdown."""
    lines = [
        START,
        "## Latest results",
        "",
        f"- Run: {started:%Y-%m-%d %H:%M} UTC, `{'python -m bench --quick' if quick else 'make bench'}`"
        + (" (quick plan: fewer requests, noisier)" if quick else ""),
        f"- Machine: {host.cpus} CPUs (nproc), {host.cpu_model}; {host.kernel}",
        f"- Software: Python {host.python}, grpcio {host.grpcio}, {host.h2load}",
        f"- Logging: {outcome.access_log}",
        f"- Background: {outcome.background}",
        "",
        "| benchmark | h2load load | req/s | p50 ms | p99 ms | requests | target |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in _rows(outcome):
        res = row.result
        lines.append(
            f"| {row.name} | `{row.load}` | {res.req_per_s:,.0f} | {res.p50_ms:.2f} | {res.p99_ms:.2f}"
            f" | {res.requests:,} | {row.target} |"
        )
    if outcome.round_ratios:
        lines += ["", f"Echo throughput, {_rounds(outcome)}."]
    if payments is not None:
        lines += _render_payments(payments, host.cpus)
    if marketing is not None:
        lines += render_marketing(marketing, host.cpus)
    lines += ["", "Checks made during the run:", ""]
    checks = outcome.checks + (payments.checks if payments else []) + (marketing.checks if marketing else [])
    lines += [f"- {check}" for check in checks]
    lines += [
        "",
        "Measured commands (each after a warm-up run with the same options and fewer requests;"
        " the first two run once per alternating round):",
        "",
    ]
    lines.append("```sh")
    lines += [_command(result, tokens) for result in outcome.results.values()]
    lines += ["```", END]
    return "\n".join(lines)


_TEMPLATE = """# Performance

Benchmarks of the shared RPC runtime and of the ID service. Reproduce with `make bench`
(`python -m bench`; never part of `make test`).

{results}
"""


def update_docs(
    path: Path,
    outcome: Outcome,
    host: Machine,
    started: datetime,
    *,
    quick: bool,
    payments: PaymentsOutcome | None = None,
    marketing: MarketingOutcome | None = None,
) -> None:
    """Replace the results section of ``path`` (create the file if needed), keeping the prose around it."""
    tokens = list(outcome.secrets)
    section = render(outcome, host, started, quick=quick, tokens=tokens, payments=payments, marketing=marketing)
    if path.exists():
        text = path.read_text()
        if START in text and END in text:
            head, rest = text.split(START, 1)
            _, tail = rest.split(END, 1)
            path.write_text(head + section + tail)
            return
        path.write_text(text.rstrip() + "\n\n" + section + "\n")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_TEMPLATE.format(results=section))
