"""Starting and stopping the server subprocesses, and reading their access logs."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any

from bench._h2load import BenchError

ROOT = Path(__file__).resolve().parent.parent

# Exporters would send every span/metric to a collector that is not there; the bench
# measures the default deployment without one (spans non-recording, no metric reader).
_DROPPED_ENV_PREFIXES = ("OTEL_", "FURIMA_LOG_", "FURIMA_ID_")


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_ENV_PREFIXES)}
    env["FURIMA_LOG_FORMAT"] = "json"
    env["FURIMA_LOG_LEVEL"] = "INFO"
    return env


def cpu_busy(seconds: float = 1.0) -> float:
    """Share of all CPUs busy over ``seconds`` (from /proc/stat), to flag a machine that is not idle."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields), idle

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


REFERENCE_ADDITIONS = 5_000_000


def reference_seconds(tries: int = 3) -> float:
    """Seconds this machine takes for a fixed pure-Python loop (`REFERENCE_ADDITIONS`
    integer additions), the best of ``tries``. Shared and throttled machines change speed
    from hour to hour; this figure beside the results says how fast the CPU was, so runs
    of different days compare fairly (results scale roughly with its inverse).
    """
    best = float("inf")
    for _ in range(tries):
        started = time.perf_counter()
        total = 0
        for i in range(REFERENCE_ADDITIONS):
            total += i
        best = min(best, time.perf_counter() - started)
    return best


class ServerProcess:
    """A ``python -m bench._serve KIND`` child; its stderr (the JSON log) goes to ``log_path``."""

    def __init__(self, kind: str, workdir: Path, *, args: tuple[str, ...] = (), startup_timeout: float = 60.0) -> None:
        self.kind = kind
        self.args = args
        self.workdir = workdir
        self.log_path = workdir / f"{kind}.log"
        self.startup_timeout = startup_timeout
        self.info: dict[str, Any] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._mark = 0

    @property
    def port(self) -> int:
        """The port the server bound on 127.0.0.1."""
        return int(self.info["port"])

    @property
    def pid(self) -> int:
        """The child's process id (for a profiler)."""
        assert self._proc is not None
        return self._proc.pid

    def __enter__(self) -> ServerProcess:
        """Start the child and wait for its JSON ready line."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "bench._serve", self.kind, str(self.workdir), *self.args],
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=ROOT,
                env=_child_env(),
            )
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], self.startup_timeout)
        line = self._proc.stdout.readline() if ready else b""
        if not line:
            self._kill()
            raise BenchError(f"the {self.kind} server did not start; its log ends with:\n{self._log_tail()}")
        self.info = json.loads(line)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """SIGTERM the child and wait for it (kill it if it hangs)."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._kill()

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def _log_tail(self, limit: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-limit:] if self.log_path.exists() else "(no log)"

    def mark_log(self) -> None:
        """Remember the log's end once it has settled (access lines are written in batches
        up to 0.1 s late); `access_codes` counts only lines written after it.
        """
        self._wait_for_quiet_log(settle_s=2.0)
        self._mark = self.log_path.stat().st_size

    def _wait_for_quiet_log(self, settle_s: float) -> None:
        deadline = time.monotonic() + settle_s
        previous = -1
        while True:
            size = self.log_path.stat().st_size
            if size == previous or time.monotonic() > deadline:
                return
            previous = size
            time.sleep(0.25)

    def access_codes(self, method: str, settle_s: float = 2.0) -> Counter[str]:
        """Status codes of the access lines for ``method`` since `mark_log` (waits briefly for stragglers)."""
        self._wait_for_quiet_log(settle_s)
        codes: Counter[str] = Counter()
        with self.log_path.open("rb") as log:
            log.seek(self._mark)
            for raw in log:
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                if line.get("event") == "rpc" and line.get("method") == method:
                    codes[str(line.get("code"))] += 1
        return codes

    def log_lines(self) -> int:
        """Lines in the log so far."""
        with self.log_path.open("rb") as log:
            return sum(1 for _ in log)
