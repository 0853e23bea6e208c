"""Garbage-collector settings for a serving process."""

from __future__ import annotations

import gc

SERVING_GEN0_THRESHOLD = 50_000
"""Allocations between young-generation collections while serving (CPython's default: 700)."""


def tune_gc_for_serving(gen0_threshold: int = SERVING_GEN0_THRESHOLD) -> None:
    """Call once start-up is done. Everything built so far (modules, descriptors, the
    text model, compiled rules) is moved out of the collector's sight (``gc.freeze``), so
    full collections stop rescanning it and stop pausing requests for tens of
    milliseconds; the young generation is collected less often. Reference counting still
    frees almost everything at once; only cyclic garbage waits a little longer.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, max(gen1, 50), max(gen2, 100))
