"""Experiments: validation, the documented assignment hash against shared vectors, the
split of real traffic, holdout independence, stickiness and the assembly of results.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from collections import Counter
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.errors import InvalidArgument
from services.marketing.domain.experiments import (
    BUCKETS,
    Experiment,
    Variant,
    assign,
    assignment_bucket,
    bucket_ranges,
    holdout_bucket,
    in_holdout,
    results,
    sticky_variant,
    variant_for_bucket,
)
from services.marketing.domain.stats import Caveat, SampleRatioCheck, VariantCounts, sample_ratio_mismatch
from services.marketing.testdata import generate_assignment_vectors

VECTORS_PATH = Path(__file__).parent.parent / "testdata" / "assignment_vectors.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))


def _experiment(*weights: int, experiment_id: str = "exp_test", salt: str = "s") -> Experiment:
    """An experiment with variants ``v0, v1, ...`` of the given weights, ``v0`` the control."""
    return Experiment(experiment_id, salt, tuple(Variant(f"v{i}", w) for i, w in enumerate(weights)), "v0")


def _violations(error: pytest.ExceptionInfo[InvalidArgument]) -> dict[str, str]:
    """The field paths of an `InvalidArgument` and their descriptions."""
    return {violation.field: violation.description for violation in error.value.violations}


@cache
def _user_ids(count: int = 100_000) -> tuple[str, ...]:
    """ULID-shaped user ids from a seeded generator: random-looking, and the same every run."""
    rng = random.Random(20260601)
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    return tuple("usr_" + "".join(rng.choices(alphabet, k=26)) for _ in range(count))


@cache
def _split_503020() -> tuple[str, ...]:
    """Each of the 100,000 users' variant in a 50/30/20 experiment."""
    experiment = _experiment(50, 30, 20)
    return tuple(assign(experiment, user) for user in _user_ids())


# --- An independent implementation of the documented hash, from hashlib and the docs only.


def _reference_bucket(key: str) -> int:
    """The first 8 bytes of sha256(utf8(key)) as a big-endian unsigned integer, mod 10000."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:16], 16) % 10000


def _reference_variant(variants: Sequence[dict[str, Any]], bucket: int) -> str:
    """Variant j owns buckets [floor(10000·C_{j-1}/W), floor(10000·C_j/W))."""
    total = sum(v["weight"] for v in variants)
    cumulative = 0
    for variant in variants:
        cumulative += variant["weight"]
        if bucket < (10000 * cumulative) // total:
            return str(variant["name"])
    raise AssertionError("the last boundary is 10000")


@pytest.mark.parametrize("vector", VECTORS["assignment"], ids=lambda v: f"{v['experiment_id']}/{v['user_id']}")
def test_assignment_vectors_hold_for_an_independent_implementation(vector: dict[str, Any]) -> None:
    """A from-scratch port of the documented hash (hashlib only) reproduces every vector."""
    key = f"assign:{vector['salt']}:{vector['experiment_id']}:{vector['user_id']}"
    assert hashlib.sha256(key.encode("utf-8")).digest()[:8].hex() == vector["hash64"]
    assert _reference_bucket(key) == vector["bucket"]
    assert _reference_variant(vector["variants"], vector["bucket"]) == vector["variant"]


@pytest.mark.parametrize("vector", VECTORS["assignment"], ids=lambda v: f"{v['experiment_id']}/{v['user_id']}")
def test_assignment_vectors_hold_for_the_domain(vector: dict[str, Any]) -> None:
    """`assign` and `assignment_bucket` give each vector's bucket and variant."""
    variants = tuple(Variant(v["name"], v["weight"]) for v in vector["variants"])
    experiment = Experiment(vector["experiment_id"], vector["salt"], variants, variants[0].name)
    assert assignment_bucket(experiment.experiment_id, experiment.salt, vector["user_id"]) == vector["bucket"]
    assert assign(experiment, vector["user_id"]) == vector["variant"]


@pytest.mark.parametrize("vector", VECTORS["holdout"], ids=lambda v: f"{v['holdout_bps']}/{v['user_id']}")
def test_holdout_vectors_hold_for_both_implementations(vector: dict[str, Any]) -> None:
    """The holdout hash matches the vectors from scratch and in the domain."""
    key = f"holdout:{vector['holdout_salt']}:{vector['user_id']}"
    assert hashlib.sha256(key.encode("utf-8")).digest()[:8].hex() == vector["hash64"]
    assert _reference_bucket(key) == vector["bucket"] == holdout_bucket(vector["holdout_salt"], vector["user_id"])
    assert (vector["bucket"] < vector["holdout_bps"]) is vector["in_holdout"]
    assert in_holdout(vector["user_id"], vector["holdout_salt"], vector["holdout_bps"]) is vector["in_holdout"]


def test_vectors_cover_every_boundary_and_the_file_is_reproducible() -> None:
    """Vectors sit on both sides of each inner boundary, and the file is the generator's output."""
    buckets = {(v["experiment_id"], v["bucket"]) for v in VECTORS["assignment"]}
    assert {("exp_three_way", b) for b in (0, 3332, 3333, 6665, 6666, 9999)} <= buckets
    assert {("exp_tiny_arm", 9998), ("exp_tiny_arm", 9999)} <= buckets
    assert 50 <= len(VECTORS["assignment"]) <= 60
    assert VECTORS_PATH.read_text(encoding="utf-8") == generate_assignment_vectors.render()


# --- The bucket layout.


def test_equal_weights_split_the_buckets_within_one_bucket() -> None:
    """1:1:1 is 3333/3333/3334: the remainder bucket goes to the last variant."""
    sizes = [r.end - r.start for r in bucket_ranges(_experiment(1, 1, 1))]
    assert sizes == [3333, 3333, 3334]
    assert [(r.start, r.end) for r in bucket_ranges(_experiment(50, 30, 20))] == [
        (0, 5000),
        (5000, 8000),
        (8000, 10000),
    ]
    assert [(r.start, r.end) for r in bucket_ranges(_experiment(9999, 1))] == [(0, 9999), (9999, 10000)]


@given(st.lists(st.integers(1, 2000), min_size=2, max_size=20).filter(lambda ws: sum(ws) <= BUCKETS))
def test_bucket_ranges_tile_the_buckets_in_proportion(weights: list[int]) -> None:
    """Ranges are contiguous, cover [0, 10000), and each is within one bucket of its exact share."""
    ranges = bucket_ranges(_experiment(*weights))
    assert ranges[0].start == 0
    assert ranges[-1].end == BUCKETS
    assert all(a.end == b.start for a, b in itertools.pairwise(ranges))
    for bucket_range, weight in zip(ranges, weights, strict=True):
        size = bucket_range.end - bucket_range.start
        assert size >= 1
        assert abs(size - BUCKETS * weight / sum(weights)) < 1
    assert variant_for_bucket(_experiment(*weights), BUCKETS - 1) == f"v{len(weights) - 1}"


def test_a_bucket_outside_the_range_is_refused() -> None:
    """Bucket 10000 has no variant."""
    with pytest.raises(ValueError, match="outside"):
        variant_for_bucket(_experiment(1, 1), BUCKETS)


# --- Traffic.


def test_100k_users_split_50_30_20_within_tolerance_and_pass_the_srm_check() -> None:
    """Each share is within 4.5 standard errors of its weight, and SRM is not flagged."""
    counts = Counter(_split_503020())
    total = len(_user_ids())
    for name, share in (("v0", 0.5), ("v1", 0.3), ("v2", 0.2)):
        tolerance = 4.5 * math.sqrt(share * (1 - share) / total)
        assert abs(counts[name] / total - share) < tolerance, (name, counts)
    check = sample_ratio_mismatch([counts["v0"], counts["v1"], counts["v2"]], [50, 30, 20])
    assert not check.mismatch
    assert check.p_value > 0.001


def test_losing_one_arms_exposures_is_flagged_as_srm() -> None:
    """A variant that loses one exposure in 20 (a crash before logging) trips the SRM check;
    one in 50 is still below what 100,000 users can detect at p < 0.001.
    """

    def check(every: int) -> SampleRatioCheck:
        exposures = Counter(v for i, v in enumerate(_split_503020()) if not (v == "v1" and i % every == 0))
        return sample_ratio_mismatch([exposures["v0"], exposures["v1"], exposures["v2"]], [50, 30, 20])

    assert check(every=20).mismatch
    assert check(every=20).p_value < 1e-9
    assert not check(every=50).mismatch
    assert check(every=50).p_value < 0.01


def test_the_holdout_is_its_share_and_independent_of_assignment() -> None:
    """10% land in the holdout, and inside it the experiment still splits 50/30/20."""
    experiment = _experiment(50, 30, 20)
    held = [user for user in _user_ids() if in_holdout(user, "global", 1000)]
    share = len(held) / len(_user_ids())
    assert abs(share - 0.1) < 4.5 * math.sqrt(0.1 * 0.9 / len(_user_ids()))
    counts = Counter(assign(experiment, user) for user in held)
    assert not sample_ratio_mismatch([counts["v0"], counts["v1"], counts["v2"]], [50, 30, 20]).mismatch


def test_two_experiments_assign_independently() -> None:
    """Being in v1 of one 50/50 experiment says nothing about the other: a quarter are in both."""
    first = _experiment(1, 1, experiment_id="exp_first")
    second = _experiment(1, 1, experiment_id="exp_second")
    users = _user_ids()[:40_000]
    both = sum(1 for user in users if assign(first, user) == "v1" and assign(second, user) == "v1")
    assert abs(both / len(users) - 0.25) < 4.5 * math.sqrt(0.25 * 0.75 / len(users))


def test_a_new_salt_reshuffles_users() -> None:
    """About half the users change arm in a 50/50 experiment when the salt changes."""
    before, after = _experiment(1, 1, salt="run1"), _experiment(1, 1, salt="run2")
    users = _user_ids()[:10_000]
    moved = sum(1 for user in users if assign(before, user) != assign(after, user))
    assert 4_700 < moved < 5_300


def test_ramping_a_treatment_up_only_moves_users_into_it() -> None:
    """Going from 90/10 to 50/50 never moves a treatment user back to control."""
    ramp_start, ramp_end = _experiment(90, 10), _experiment(50, 50)
    users = _user_ids()[:10_000]
    assert all(assign(ramp_end, user) == "v1" for user in users if assign(ramp_start, user) == "v1")


def test_the_holdout_bounds_are_checked() -> None:
    """0 bps holds nobody out, 10000 bps everybody; outside that range, or a bad salt, is refused."""
    assert not in_holdout("usr_1", "global", 0)
    assert in_holdout("usr_1", "global", BUCKETS)
    for bps in (-1, BUCKETS + 1):
        with pytest.raises(ValueError, match="holdout_bps"):
            in_holdout("usr_1", "global", bps)
    with pytest.raises(ValueError, match="salt"):
        in_holdout("usr_1", "a:b", 10)


# --- Stickiness.


def test_a_stored_assignment_wins_over_the_hash_after_a_weight_change() -> None:
    """A user stored in v0 stays there even when new weights would hash them into v1."""
    reweighted = _experiment(1, 9999)
    user = next(u for u in _user_ids() if assign(_experiment(1, 1), u) == "v0" and assign(reweighted, u) == "v1")
    assert sticky_variant(reweighted, user, stored="v0") == "v0"
    assert sticky_variant(reweighted, user, stored=None) == "v1"


def test_assigning_needs_a_user_id() -> None:
    """An empty user id is refused with a field violation."""
    with pytest.raises(InvalidArgument) as error:
        assign(_experiment(1, 1), "")
    assert _violations(error) == {"user_id": "is required"}


# --- Validation.


@pytest.mark.parametrize(
    ("variants", "control", "path"),
    [
        ((Variant("a", 1), Variant("b", 0)), "a", "experiment.variants[1].weight"),
        ((Variant("a", 1), Variant("b", -3)), "a", "experiment.variants[1].weight"),
        ((Variant("a", 1), Variant("a", 1)), "a", "experiment.variants[1].name"),
        ((Variant("a", 1), Variant("", 1)), "a", "experiment.variants[1].name"),
        ((Variant("a", 1), Variant("b:c", 1)), "a", "experiment.variants[1].name"),
        ((Variant("a", 1), Variant("b\n", 1)), "a", "experiment.variants[1].name"),
        ((Variant("a", 1), Variant("x" * 65, 1)), "a", "experiment.variants[1].name"),
        ((Variant("a", 1),), "a", "experiment.variants"),
        ((Variant("a", 5000), Variant("b", 5001)), "a", "experiment.variants"),
        (tuple(Variant(f"v{i}", 1) for i in range(21)), "v0", "experiment.variants"),
        ((Variant("a", 1), Variant("b", 1)), "c", "experiment.control"),
    ],
)
def test_malformed_experiments_name_the_offending_field(variants: tuple[Variant, ...], control: str, path: str) -> None:
    """Each rule reports the proto path of what broke it."""
    with pytest.raises(InvalidArgument) as error:
        Experiment("exp_1", "s", variants, control)
    assert path in _violations(error)


def test_every_violation_is_reported_at_once() -> None:
    """An id with ':', an empty salt, a bad weight and an unknown control come back together."""
    with pytest.raises(InvalidArgument) as error:
        Experiment("exp:1", "", (Variant("a", 1), Variant("b", 0)), "z")
    assert set(_violations(error)) == {
        "experiment.experiment_id",
        "experiment.salt",
        "experiment.variants[1].weight",
        "experiment.control",
    }


# --- Results.


def test_results_compare_each_variant_with_the_control() -> None:
    """The control carries no comparison; the others carry the stats module's comparison."""
    experiment = Experiment(
        "exp_1", "s", (Variant("treatment", 1), Variant("control", 1), Variant("other", 1)), "control"
    )
    counts = {"control": VariantCounts(1000, 200), "treatment": VariantCounts(1000, 250)}
    outcome = results(experiment, counts, confidence=0.9)
    by_name = {row.name: row for row in outcome.variants}
    assert [row.name for row in outcome.variants] == ["treatment", "control", "other"]
    assert by_name["control"].is_control
    assert by_name["control"].comparison is None
    assert by_name["control"].rate == 0.2
    treatment = by_name["treatment"].comparison
    assert treatment is not None
    assert treatment.p_value == pytest.approx(0.007419649261025693, rel=1e-9)
    other = by_name["other"]
    assert (other.exposures, other.rate) == (0, None)
    assert other.comparison is not None
    assert other.comparison.caveats == {Caveat.NO_EXPOSURES}
    assert outcome.confidence == 0.9
    assert outcome.sample_ratio.mismatch  # nobody was exposed to "other"


def test_srm_expects_the_buckets_each_variant_really_gets() -> None:
    """Exposures exactly proportional to 3333/3333/3334 buckets give a chi-square of zero."""
    experiment = _experiment(1, 1, 1)
    counts = {"v0": VariantCounts(3333, 10), "v1": VariantCounts(3333, 10), "v2": VariantCounts(3334, 10)}
    check = results(experiment, counts).sample_ratio
    assert check.chi_square == pytest.approx(0.0, abs=1e-12)
    assert check.p_value == pytest.approx(1.0)
    assert check.degrees_of_freedom == 2


def test_results_refuse_counts_for_unknown_variants() -> None:
    """Counts for a variant the experiment does not have are a caller error, not silently dropped."""
    with pytest.raises(ValueError, match="ghost"):
        results(_experiment(1, 1), {"ghost": VariantCounts(1, 0)})


@pytest.mark.parametrize("confidence", [0.5, 1.0, 0.0, 1.2])
def test_results_refuse_a_confidence_level_outside_one_half_to_one(confidence: float) -> None:
    """The request's confidence must be strictly between 0.5 and 1."""
    with pytest.raises(InvalidArgument) as error:
        results(_experiment(1, 1), {}, confidence=confidence)
    assert set(_violations(error)) == {"confidence"}
