"""Measure `LinearTextClassifier.scores` latency on the committed artifact.

    .venv/bin/python -m services.tns.ml.bench

Prints p50 / p99 / worst per text length. Timings, not assertions: the tests never
assert on time (shared machines make that flaky).
"""

from __future__ import annotations

import gc
import statistics
import time

from services.tns.domain.classifier import load_classifier

SHORT = "銀行口座に振り込んでください"
# A typical listing: title + a 200-400 character description, mixed scripts and emoji.
LONG = (
    "【美品】ルイヴィトン 長財布 モノグラム 正規品\n"
    "ご覧いただきありがとうございます。昨年百貨店で購入しましたが、使う機会がなく出品します。"
    "目立った傷や汚れはありません。箱・保存袋・レシートもお付けします。即購入OKです。"
    "お値下げ交渉はコメントでお願いします。らくらくメルカリ便で24時間以内に発送します。"
    "Brand-new Louis Vuitton wallet with receipt, bought last year, never used. "
    "Smoke-free home. Ships within 2 days. ✨💖"
)
CASES = {"short (14 chars)": SHORT, f"listing ({len(LONG)} chars)": LONG, "long (1,200 chars)": LONG * 4}


def measure(text: str, runs: int = 5000) -> list[float]:
    """Per-call wall time in microseconds over ``runs`` calls (after a warm-up)."""
    classifier = load_classifier()
    for _ in range(200):
        classifier.scores(text)
    timings: list[float] = []
    gc.disable()  # a collection pause is real, but it is not this function's cost
    try:
        for _ in range(runs):
            start = time.perf_counter_ns()
            classifier.scores(text)
            timings.append((time.perf_counter_ns() - start) / 1000)
    finally:
        gc.enable()
    return timings


def main() -> None:
    """Print the latency table."""
    started = time.perf_counter()
    classifier = load_classifier()
    print(f"artifact {classifier.version} loaded in {(time.perf_counter() - started) * 1000:.0f} ms")
    for name, text in CASES.items():
        timings = sorted(measure(text))
        p99 = timings[int(len(timings) * 0.99)]
        print(f"{name:22s} p50 {statistics.median(timings):6.1f} µs   p99 {p99:6.1f} µs   worst {timings[-1]:7.1f} µs")


if __name__ == "__main__":
    main()
