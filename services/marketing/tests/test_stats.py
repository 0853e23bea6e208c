"""Experiment statistics: the special functions against known values and closed forms, the
lift and z-test against hand-computed values, calibration by simulation, edge cases, SRM.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.marketing.domain.stats import (
    Caveat,
    Comparison,
    VariantCounts,
    chi_square_sf,
    compare,
    critical_value,
    normal_cdf,
    normal_quantile,
    normal_sf,
    regularized_gamma_q,
    sample_ratio_mismatch,
)

# --- The normal distribution.


@pytest.mark.parametrize(
    ("p", "z"),
    [
        (0.5, 0.0),
        (0.9, 1.2815515655446004),
        (0.95, 1.6448536269514722),
        (0.975, 1.959963984540054),
        (0.995, 2.5758293035489004),
        (0.999, 3.090232306167813),
        (0.025, -1.959963984540054),
        (1e-10, -6.361340902404056),
    ],
)
def test_normal_quantile_matches_the_tables(p: float, z: float) -> None:
    """The inverse normal CDF gives the textbook critical values to 1e-12."""
    assert normal_quantile(p) == pytest.approx(z, abs=1e-12)


@given(st.floats(1e-12, 1 - 1e-12))
def test_normal_quantile_inverts_the_cdf(p: float) -> None:
    """normal_cdf(normal_quantile(p)) gives p back."""
    assert normal_cdf(normal_quantile(p)) == pytest.approx(p, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 1.5])
def test_normal_quantile_refuses_impossible_probabilities(p: float) -> None:
    """Probabilities of 0 and 1 have no finite quantile."""
    with pytest.raises(ValueError, match="probability"):
        normal_quantile(p)


def test_critical_values_of_common_confidence_levels() -> None:
    """90/95/99% intervals use 1.645/1.960/2.576; a level outside (0, 1) is refused."""
    assert critical_value(0.90) == pytest.approx(1.6448536269514722, abs=1e-12)
    assert critical_value(0.95) == pytest.approx(1.959963984540054, abs=1e-12)
    assert critical_value(0.99) == pytest.approx(2.5758293035489004, abs=1e-12)
    with pytest.raises(ValueError, match="confidence"):
        critical_value(1.0)


def test_normal_tails_keep_their_precision() -> None:
    """Tail probabilities come from erfc, so they do not round to 0 or 1 in the far tails."""
    assert normal_sf(1.959963984540054) == pytest.approx(0.025, rel=1e-12)
    assert normal_sf(0.0) == 0.5
    assert normal_sf(8.0) == pytest.approx(6.22096057427174e-16, rel=1e-10)
    assert normal_cdf(-10.0) == pytest.approx(7.61985302416047e-24, rel=1e-10)


# --- The chi-square survival function.


@pytest.mark.parametrize(
    ("x", "df", "sf"),
    [
        (3.841458820694124, 1, 0.05),
        (5.991464547107979, 2, 0.05),
        (7.814727903251179, 3, 0.05),
        (9.487729036781154, 4, 0.05),
        (11.070497693516351, 5, 0.05),
        (6.634896601021214, 1, 0.01),
        (10.828, 1, 0.000999765719583),
        (13.815510557964274, 2, 0.001),
        (4.0, 1, 0.04550026389635857),
        (16.0, 1, 6.334248366623988e-05),
        (100.0, 100, 0.48119168452795674),
    ],
)
def test_chi_square_sf_matches_the_tables(x: float, df: int, sf: float) -> None:
    """The critical values of the chi-square table map back to their tail probabilities."""
    assert chi_square_sf(x, df) == pytest.approx(sf, rel=1e-9)


def _reference_chi_square_sf(x: float, df: int) -> float:
    """Closed form by recurrence, Q(a+1, y) = Q(a, y) + y^a e^-y / Γ(a+1), from Q(1/2, y) =
    erfc(√y) or Q(1, y) = e^-y: a different algorithm from the series and continued fraction.
    """
    y = x / 2
    a, q = (0.5, math.erfc(math.sqrt(y))) if df % 2 else (1.0, math.exp(-y))
    while a < df / 2:
        q += math.exp(a * math.log(y) - y - math.lgamma(a + 1)) if y > 0 else 0.0
        a += 1
    return q


@given(st.floats(0.0, 300.0), st.integers(1, 60))
def test_chi_square_sf_matches_the_closed_form(x: float, df: int) -> None:
    """Across both algorithms' ranges (x below and above df/2 + 1), the result is the closed form."""
    assert chi_square_sf(x, df) == pytest.approx(_reference_chi_square_sf(x, df), rel=1e-10, abs=1e-300)


def test_chi_square_sf_edges() -> None:
    """sf(0) is 1, the far tail stays positive, 1 df agrees with the normal, bad input is refused."""
    assert chi_square_sf(0.0, 3) == 1.0
    assert chi_square_sf(1000.0, 1) == pytest.approx(1.7958327848007363e-219, rel=1e-10)
    assert chi_square_sf(2.677397763008329**2, 1) == pytest.approx(2 * normal_sf(2.677397763008329), rel=1e-12)
    assert regularized_gamma_q(3.0, math.inf) == 0.0
    with pytest.raises(ValueError, match="degrees of freedom"):
        chi_square_sf(1.0, 0)
    with pytest.raises(ValueError, match="a > 0"):
        regularized_gamma_q(1.0, -1.0)


# --- Comparing a variant with the control.


def test_two_proportions_200_of_1000_against_250_of_1000() -> None:
    """Hand-computed values for control 200/1000 and variant 250/1000.

    pooled p = 0.225, SE0 = sqrt(0.225·0.775·(2/1000)) = 0.0186748494…, z = 0.05/SE0 =
    2.6773977630…, p = erfc(z/√2) = 0.0074196492… (R: prop.test(c(250, 200), c(1000, 1000),
    correct = FALSE) gives X-squared = 7.1685 = z², p-value = 0.00742).
    Wald SE = sqrt(0.25·0.75/1000 + 0.2·0.8/1000) = sqrt(3.475e-4), CI = 0.05 ± 1.959964·SE.
    Delta SE of r = sqrt(1.875e-4/0.04 + 0.0625·1.6e-4/0.0016) = sqrt(0.0109375), CI = 0.25 ± 1.959964·SE.
    """
    result = compare(VariantCounts(1000, 200), VariantCounts(1000, 250))
    assert result.absolute_lift == pytest.approx(0.05, abs=1e-15)
    assert result.relative_lift == pytest.approx(0.25, abs=1e-15)
    assert result.z == pytest.approx(2.677397763008329, rel=1e-12)
    assert result.z is not None
    assert result.z**2 == pytest.approx(7.1685, abs=1e-4)
    assert result.p_value == pytest.approx(0.007419649261025693, rel=1e-9)
    _assert_interval(result, "absolute", 0.05 - 1.959963984540054 * math.sqrt(3.475e-4), 0.0865363783124601)
    _assert_interval(result, "relative", 0.04502206008611079, 0.25 + 1.959963984540054 * math.sqrt(0.0109375))
    assert result.caveats == frozenset()


def _assert_interval(result: Comparison, which: str, low: float, high: float) -> None:
    """The absolute or relative interval of ``result`` is (low, high) to 1e-12."""
    interval = result.absolute_lift_interval if which == "absolute" else result.relative_lift_interval
    assert interval is not None
    assert interval.low == pytest.approx(low, abs=1e-12)
    assert interval.high == pytest.approx(high, abs=1e-12)


def test_the_confidence_level_sets_the_interval_width() -> None:
    """A 99% interval is 2.5758/1.9600 times as wide as a 95% one, around the same estimate."""
    control, variant = VariantCounts(5000, 500), VariantCounts(5000, 560)
    narrow = compare(control, variant).absolute_lift_interval
    wide = compare(control, variant, confidence=0.99).absolute_lift_interval
    assert narrow is not None
    assert wide is not None
    ratio = (wide.high - wide.low) / (narrow.high - narrow.low)
    assert ratio == pytest.approx(2.5758293035489004 / 1.959963984540054, rel=1e-12)
    assert (wide.low + wide.high) / 2 == pytest.approx(0.012, abs=1e-15)


def test_a_variant_with_no_exposures_has_nothing_to_compare() -> None:
    """No exposures on either side: every number is None, and the caveat says why."""
    nothing = Comparison(None, None, None, None, None, None, frozenset({Caveat.NO_EXPOSURES}))
    assert compare(VariantCounts(100, 5), VariantCounts(0, 0)) == nothing
    assert compare(VariantCounts(0, 0), VariantCounts(9, 1)) == nothing


def test_a_control_that_never_converted_has_no_relative_lift() -> None:
    """0/500 against 10/500: the absolute lift and test exist; the ratio does not."""
    result = compare(VariantCounts(500, 0), VariantCounts(500, 10))
    assert result.absolute_lift == pytest.approx(0.02)
    assert result.p_value is not None
    assert result.p_value < 0.01
    assert (result.relative_lift, result.relative_lift_interval) == (None, None)
    assert result.caveats == {Caveat.NO_CONTROL_CONVERSIONS, Caveat.SMALL_SAMPLE}


def test_nobody_converting_anywhere_is_degenerate_not_certain() -> None:
    """0/100 against 0/100: a lift of 0, but no test and no zero-width interval."""
    result = compare(VariantCounts(100, 0), VariantCounts(100, 0))
    assert result.absolute_lift == 0.0
    assert (result.z, result.p_value, result.absolute_lift_interval) == (None, None, None)
    assert Caveat.DEGENERATE in result.caveats


def test_opposite_certainties_test_but_have_no_wald_interval() -> None:
    """0/100 against 100/100: the pooled test is extreme; the unpooled interval has zero width."""
    result = compare(VariantCounts(100, 0), VariantCounts(100, 100))
    assert result.z == pytest.approx(math.sqrt(200))
    assert result.p_value is not None
    assert result.p_value < 1e-40
    assert result.absolute_lift_interval is None
    assert Caveat.DEGENERATE in result.caveats


def test_few_conversions_are_flagged_as_a_small_sample() -> None:
    """Nine conversions in an arm are reported, with the small-sample caveat; ten are not."""
    assert compare(VariantCounts(1000, 9), VariantCounts(1000, 30)).caveats == {Caveat.SMALL_SAMPLE}
    assert compare(VariantCounts(1000, 10), VariantCounts(1000, 30)).caveats == frozenset()
    assert compare(VariantCounts(1000, 10), VariantCounts(1000, 995)).caveats == {Caveat.SMALL_SAMPLE}


@pytest.mark.parametrize(("exposures", "conversions"), [(-1, 0), (10, 11), (10, -1)])
def test_impossible_counts_are_refused(exposures: int, conversions: int) -> None:
    """Conversions are counted among exposed users: never more than the exposures."""
    with pytest.raises(ValueError, match="counts"):
        VariantCounts(exposures, conversions)


_COUNTS = st.integers(0, 5000).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n)))


@given(_COUNTS, _COUNTS, st.floats(0.5, 0.999))
def test_comparisons_never_hold_nan_or_infinity(
    control: tuple[int, int], variant: tuple[int, int], confidence: float
) -> None:
    """Whatever the counts, numbers are finite or None, p is a probability, intervals hold the estimate."""
    result = compare(VariantCounts(*control), VariantCounts(*variant), confidence)
    for value in (result.absolute_lift, result.relative_lift, result.z, result.p_value):
        assert value is None or math.isfinite(value)
    assert result.p_value is None or 0.0 <= result.p_value <= 1.0
    for estimate, interval in [
        (result.absolute_lift, result.absolute_lift_interval),
        (result.relative_lift, result.relative_lift_interval),
    ]:
        if interval is not None:
            assert estimate is not None
            assert interval.low <= estimate <= interval.high
    if result.z is None or result.absolute_lift_interval is None:
        assert result.caveats & {Caveat.NO_EXPOSURES, Caveat.DEGENERATE}


# --- Calibration by simulation: wrong standard errors show up as wrong error rates.

_SIMULATIONS = 4000
_RATE_TOLERANCE = 4.5 * math.sqrt(0.05 * 0.95 / _SIMULATIONS)


def _simulate(rate_control: float, rate_variant: float, exposures: int, seed: int) -> list[Comparison]:
    """Comparisons of many simulated experiments with known true rates."""
    rng = np.random.default_rng(seed)
    controls = rng.binomial(exposures, rate_control, _SIMULATIONS)
    variants = rng.binomial(exposures, rate_variant, _SIMULATIONS)
    return [
        compare(VariantCounts(exposures, int(c)), VariantCounts(exposures, int(v)))
        for c, v in zip(controls, variants, strict=True)
    ]


def test_the_z_test_rejects_a_true_null_five_percent_of_the_time() -> None:
    """With equal true rates, p < 0.05 in 5% of experiments."""
    results = _simulate(0.1, 0.1, 2000, seed=1)
    rejected = sum(1 for r in results if r.p_value is not None and r.p_value < 0.05) / _SIMULATIONS
    assert abs(rejected - 0.05) < _RATE_TOLERANCE


def test_the_intervals_cover_the_true_lift_95_percent_of_the_time() -> None:
    """With rates 10% and 12%, the 95% intervals hold the true +0.02 and +20% in 95% of experiments."""
    results = _simulate(0.1, 0.12, 2000, seed=2)
    absolute = sum(1 for r in results if (i := r.absolute_lift_interval) and i.low <= 0.02 <= i.high)
    relative = sum(1 for r in results if (i := r.relative_lift_interval) and i.low <= 0.2 <= i.high)
    assert abs(absolute / _SIMULATIONS - 0.95) < _RATE_TOLERANCE
    assert abs(relative / _SIMULATIONS - 0.95) < _RATE_TOLERANCE


# --- Sample-ratio mismatch.


def test_srm_statistic_and_p_value_by_hand() -> None:
    """5100/4900 on 1:1 is chi-square 4 (p 0.0455, fine); 5200/4800 is 16 (p 6.3e-5, flagged)."""
    fine = sample_ratio_mismatch([5100, 4900], [1, 1])
    assert fine.chi_square == pytest.approx(4.0)
    assert fine.degrees_of_freedom == 1
    assert fine.p_value == pytest.approx(0.04550026389635857, rel=1e-9)
    assert not fine.mismatch
    skewed = sample_ratio_mismatch([5200, 4800], [0.5, 0.5])
    assert skewed.chi_square == pytest.approx(16.0)
    assert skewed.p_value == pytest.approx(6.334248366623988e-05, rel=1e-9)
    assert skewed.mismatch


def test_srm_uses_k_minus_one_degrees_of_freedom() -> None:
    """Three variants 50/30/20: (5150-5000)²/5000 + (2900-3000)²/3000 + (1950-2000)²/2000 = 9.0833, 2 df."""
    check = sample_ratio_mismatch([5150, 2900, 1950], [50, 30, 20])
    assert check.chi_square == pytest.approx(4.5 + 10 / 3 + 1.25, rel=1e-12)
    assert check.degrees_of_freedom == 2
    assert check.p_value == pytest.approx(math.exp(-check.chi_square / 2), rel=1e-12)


def test_the_srm_threshold_is_configurable() -> None:
    """At a 0.05 threshold, the 5100/4900 split is flagged."""
    assert sample_ratio_mismatch([5100, 4900], [1, 1], threshold=0.05).mismatch


def test_no_exposures_is_no_mismatch() -> None:
    """An experiment nobody has seen yet passes the check: statistic 0, p-value 1."""
    check = sample_ratio_mismatch([0, 0, 0], [1, 1, 2])
    assert (check.chi_square, check.p_value, check.mismatch) == (0.0, 1.0, False)


@pytest.mark.parametrize(
    ("exposures", "shares", "threshold"),
    [
        ([1, 2], [1.0], 0.001),
        ([1], [1.0], 0.001),
        ([1, 2], [0.0, 1.0], 0.001),
        ([-1, 2], [1, 1], 0.001),
        ([1, 2], [1, 1], 1.0),
    ],
)
def test_srm_refuses_malformed_input(exposures: list[int], shares: list[float], threshold: float) -> None:
    """Mismatched lengths, one variant, a zero share, negative counts or a threshold of 1 are refused."""
    with pytest.raises(ValueError, match=r"share|threshold"):
        sample_ratio_mismatch(exposures, shares, threshold)
