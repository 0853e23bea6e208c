"""The serving process's garbage-collector settings."""

from __future__ import annotations

import gc

from libs.rpc import tune_gc_for_serving


def test_tuning_freezes_start_up_objects_and_relaxes_the_young_generation() -> None:
    """After tuning, start-up objects are frozen and gen-0 collects every 50,000 allocations."""
    before = gc.get_threshold()
    try:
        tune_gc_for_serving()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == 50_000
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
