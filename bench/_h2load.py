"""Running h2load against a gRPC method and reading its per-request log."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf.message import Message


class BenchError(RuntimeError):
    """A benchmark could not run or produced results that cannot be trusted."""


def ensure_h2load() -> str:
    """Return the path of h2load, installing ``nghttp2-client`` with apt-get if it is missing."""
    found = shutil.which("h2load")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None:
        raise BenchError("h2load is not installed and apt-get is not available: install nghttp2 (h2load) yourself")
    print("h2load not found; installing nghttp2-client with apt-get ...", file=sys.stderr, flush=True)
    for argv in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", "nghttp2-client"]):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BenchError(
                f"could not install h2load ({' '.join(argv)} exited {done.returncode}): "
                f"{done.stderr.strip()[-400:]}\nInstall it yourself: apt-get install -y nghttp2-client (needs root)"
            )
    found = shutil.which("h2load")
    if not found:
        raise BenchError("nghttp2-client was installed but h2load is still not on PATH")
    return found


def grpc_frame(message: Message) -> bytes:
    """One uncompressed gRPC length-prefixed message: flag byte 0, 4-byte big-endian length, payload."""
    payload = message.SerializeToString()
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


@dataclass(frozen=True)
class Load:
    """How hard to drive: total requests, connections, streams per connection, optional rate."""

    requests: int
    connections: int
    streams: int
    rps_per_connection: int | None = None
    """h2load ``--rps``: requests per second *per connection* (fixed-rate runs)."""

    @property
    def offered_rate(self) -> int | None:
        """Total offered requests per second of a fixed-rate run."""
        return None if self.rps_per_connection is None else self.rps_per_connection * self.connections


@dataclass(frozen=True)
class Result:
    """What one h2load run measured (latencies from ``--log-file``, in milliseconds)."""

    label: str
    requests: int
    succeeded: int
    failed: int
    errored: int
    seconds: float
    req_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    command: list[str] = field(repr=False)
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    """Sorted per-request latencies."""

    @property
    def ok(self) -> bool:
        """Every request got an HTTP 2xx (gRPC status is checked separately)."""
        return self.succeeded == self.requests and self.failed == 0 and self.errored == 0


_FINISHED = re.compile(r"finished in ([\d.]+)(ms|s), ([\d.]+) req/s")
_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored"
)


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def read_latencies_ms(log_file: Path) -> list[float]:
    """Per-request latencies (ms, sorted) from an h2load ``--log-file`` (start_us, status, duration_us)."""
    durations = []
    for line in log_file.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            durations.append(int(parts[2]) / 1000)
    durations.sort()
    return durations


def run(
    h2load: str,
    label: str,
    url: str,
    body: Path,
    headers: dict[str, str],
    load: Load,
    log_file: Path,
    *,
    timeout: float = 180,
) -> Result:
    """Run h2load once (POST ``body`` to ``url``) and return throughput and latency percentiles."""
    argv = [h2load, "-n", str(load.requests), "-c", str(load.connections), "-m", str(load.streams)]
    if load.rps_per_connection is not None:
        argv += ["--rps", str(load.rps_per_connection)]
    argv += ["-d", str(body), "--log-file", str(log_file)]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(url)
    log_file.unlink(missing_ok=True)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{label}: h2load did not finish within {timeout:.0f}s") from exc
    finished = _FINISHED.search(done.stdout)
    counts = _REQUESTS.search(done.stdout)
    if done.returncode != 0 or finished is None or counts is None:
        raise BenchError(f"{label}: h2load failed (exit {done.returncode}):\n{done.stdout[-1500:]}{done.stderr[-500:]}")
    seconds = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    total, _started, _done, succeeded, failed, errored = (int(g) for g in counts.groups())
    latencies = read_latencies_ms(log_file)
    if len(latencies) != total:
        raise BenchError(f"{label}: the log file has {len(latencies)} rows for {total} requests")
    return Result(
        label=label,
        requests=total,
        succeeded=succeeded,
        failed=failed,
        errored=errored,
        seconds=seconds,
        req_per_s=float(finished.group(3)),
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        max_ms=latencies[-1] if latencies else math.nan,
        command=argv,
        latencies_ms=latencies,
    )


def combine(label: str, rounds: Sequence[Result]) -> Result:
    """Pool several runs of one configuration: total requests over total time, percentiles over all requests."""
    latencies = sorted(ms for result in rounds for ms in result.latencies_ms)
    seconds = sum(result.seconds for result in rounds)
    requests = sum(result.requests for result in rounds)
    return Result(
        label=label,
        requests=requests,
        succeeded=sum(result.succeeded for result in rounds),
        failed=sum(result.failed for result in rounds),
        errored=sum(result.errored for result in rounds),
        seconds=seconds,
        req_per_s=requests / seconds,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        max_ms=latencies[-1] if latencies else math.nan,
        command=rounds[0].command,
        latencies_ms=latencies,
    )
