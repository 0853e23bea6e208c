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
from bench._scenarios import Outcome

START = "<!-- bench:results:start -->"
END = "<!-- bench:results:end -->"
RATIO_TARGET = 0.70
TOKENS_TARGET = 1_000.0
DECISIONS_TARGET = 1_500.0
DECISION_P99_TARGET_MS = 20.0


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


def print_table(outcome: Outcome, host: Machine) -> None:
    """Print the compact results table."""
    rows = _rows(outcome)
    width = max(len(row.name) for row in rows)
    print(f"\nfurima bench, one run: {host.cpus} CPUs ({host.cpu_model}), Python {host.python}, grpcio {host.grpcio}")
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


def render(outcome: Outcome, host: Machine, started: datetime, *, quick: bool, tokens: list[str]) -> str:
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
    lines += ["", "Checks made during the run:", ""]
    lines += [f"- {check}" for check in outcome.checks]
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


def update_docs(path: Path, outcome: Outcome, host: Machine, started: datetime, *, quick: bool) -> None:
    """Replace the results section of ``path`` (create the file if needed), keeping the prose around it."""
    tokens = list(outcome.secrets)
    section = render(outcome, host, started, quick=quick, tokens=tokens)
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
