"""The statistics of an experiment's results: conversion rates, lift against the control
with its confidence intervals and p-value, and the sample-ratio-mismatch check.

Pure Python on ``math`` and ``statistics`` (no scipy): the only special functions needed
are the normal distribution and the chi-square survival function, written out here.
Quantities that cannot be computed (a rate with no exposures, a relative lift over a
control that never converted) are ``None`` — never NaN or infinity — and a `Caveat` says
why. The formulas are in docs/marketing-experiments.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist

DEFAULT_CONFIDENCE = 0.95
"""Confidence level of the intervals unless the caller asks for another."""
DEFAULT_SRM_THRESHOLD = 0.001
"""A sample-ratio-mismatch p-value below this flags the experiment as broken."""
MIN_OUTCOMES = 10
"""Fewer conversions (or non-conversions) than this in an arm and the normal approximation
is too rough to trust: the numbers are still reported, with `Caveat.SMALL_SAMPLE`.
"""

_MAX_ITERATIONS = 10_000
_EPSILON = 1e-15
_TINY = 1e-300
_STANDARD_NORMAL = NormalDist()


class Caveat(StrEnum):
    """Why a comparison is missing values or should be read with care."""

    NO_EXPOSURES = "no_exposures"
    """The variant or the control has no exposures: no rate, no lift, no test."""
    NO_CONTROL_CONVERSIONS = "no_control_conversions"
    """The control never converted: relative lift (a ratio over its rate) is undefined."""
    DEGENERATE = "degenerate"
    """Every rate involved is 0 or 1, so a standard error is zero: the affected test or
    interval is left out rather than reported as certain.
    """
    SMALL_SAMPLE = "small_sample"
    """An arm has fewer than `MIN_OUTCOMES` conversions or non-conversions."""


@dataclass(frozen=True)
class VariantCounts:
    """What happened in one variant: users exposed, and how many of them converted."""

    exposures: int
    conversions: int

    def __post_init__(self) -> None:
        if self.exposures < 0 or self.conversions < 0 or self.conversions > self.exposures:
            raise ValueError(f"counts must satisfy 0 <= conversions <= exposures, got {self}")

    @property
    def rate(self) -> float | None:
        """Conversions over exposures; ``None`` when nobody was exposed."""
        return self.conversions / self.exposures if self.exposures else None


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval."""

    low: float
    high: float


@dataclass(frozen=True)
class Comparison:
    """A variant against the control: lift, its intervals, and the test of no difference."""

    absolute_lift: float | None
    """Variant rate minus control rate."""
    absolute_lift_interval: Interval | None
    """Unpooled Wald interval for the difference in rates."""
    relative_lift: float | None
    """Absolute lift over the control rate (0.25 means +25%)."""
    relative_lift_interval: Interval | None
    """Delta-method interval for the relative lift."""
    z: float | None
    """The pooled two-proportion z statistic."""
    p_value: float | None
    """Two-sided p-value of the pooled z-test (no multiple-comparison correction)."""
    caveats: frozenset[Caveat]


@dataclass(frozen=True)
class SampleRatioCheck:
    """Chi-square goodness of fit of the observed exposures to the planned allocation."""

    chi_square: float
    degrees_of_freedom: int
    p_value: float
    threshold: float
    mismatch: bool
    """``p_value < threshold``: the split is not what the allocation says, so the results
    are suspect (a variant loses exposures, a bot filter hits one arm, weights changed).
    """


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z; accurate far into the upper tail (uses erfc)."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def normal_cdf(z: float) -> float:
    """P(Z <= z) for a standard normal Z; accurate far into the lower tail."""
    return normal_sf(-z)


def normal_quantile(p: float) -> float:
    """The z with ``normal_cdf(z) == p``, for 0 < p < 1 (Wichura's AS 241, about 1e-16)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"a probability strictly between 0 and 1 is needed, got {p}")
    return _STANDARD_NORMAL.inv_cdf(p)


def critical_value(confidence: float) -> float:
    """The z of a two-sided interval at ``confidence`` (1.959963984540054 for 0.95)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    return normal_quantile(0.5 + confidence / 2.0)


def regularized_gamma_q(a: float, x: float) -> float:
    """Q(a, x) = Γ(a, x) / Γ(a), the regularized upper incomplete gamma function.

    The power series of P = 1 - Q converges fast for x < a + 1, the continued fraction of
    Q (modified Lentz) for x >= a + 1 — the split of Numerical Recipes §6.2.
    """
    if a <= 0.0 or x < 0.0 or math.isnan(x):
        raise ValueError(f"need a > 0 and x >= 0, got a={a}, x={x}")
    if x == 0.0:
        return 1.0
    if math.isinf(x):
        return 0.0
    if x < a + 1.0:
        return 1.0 - _gamma_p_series(a, x)
    return _gamma_q_continued_fraction(a, x)


def _log_prefactor(a: float, x: float) -> float:
    """log(x^a e^-x / Γ(a)), the factor both expansions share."""
    return a * math.log(x) - x - math.lgamma(a)


def _gamma_p_series(a: float, x: float) -> float:
    """P(a, x) = x^a e^-x / Γ(a) · Σ_n x^n / (a (a+1) … (a+n))."""
    term = 1.0 / a
    total = term
    denominator = a
    for _ in range(_MAX_ITERATIONS):
        denominator += 1.0
        term *= x / denominator
        total += term
        if abs(term) < abs(total) * _EPSILON:
            return total * math.exp(_log_prefactor(a, x))
    raise ArithmeticError(f"the gamma series did not converge for a={a}, x={x}")  # pragma: no cover


def _gamma_q_continued_fraction(a: float, x: float) -> float:
    """Q(a, x) = x^a e^-x / Γ(a) · 1/(x+1-a- 1·(1-a)/(x+3-a- 2·(2-a)/(x+5-a- …)))."""
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    fraction = d
    for i in range(1, _MAX_ITERATIONS):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = 1.0 / (d if abs(d) >= _TINY else _TINY)
        c = b + an / c
        c = c if abs(c) >= _TINY else _TINY
        delta = d * c
        fraction *= delta
        if abs(delta - 1.0) < _EPSILON:
            return fraction * math.exp(_log_prefactor(a, x))
    raise ArithmeticError(f"the gamma continued fraction did not converge for a={a}, x={x}")  # pragma: no cover


def chi_square_sf(x: float, degrees_of_freedom: int) -> float:
    """P(X > x) for X chi-square distributed with ``degrees_of_freedom`` (= Q(k/2, x/2))."""
    if degrees_of_freedom < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {degrees_of_freedom}")
    return regularized_gamma_q(degrees_of_freedom / 2.0, max(x, 0.0) / 2.0)


def sample_ratio_mismatch(
    exposures: Sequence[int], expected_shares: Sequence[float], threshold: float = DEFAULT_SRM_THRESHOLD
) -> SampleRatioCheck:
    """Test whether ``exposures`` per variant fit the planned shares (chi-square, k-1 df).

    ``expected_shares`` need not sum to one (they are normalized); each must be positive.
    With no exposures at all there is nothing to test: statistic 0, p-value 1.
    """
    if len(exposures) != len(expected_shares) or len(exposures) < 2:
        raise ValueError("need one expected share per variant and at least two variants")
    if any(share <= 0 for share in expected_shares) or any(count < 0 for count in exposures):
        raise ValueError("expected shares must be positive and exposures non-negative")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"the threshold must be strictly between 0 and 1, got {threshold}")
    total = sum(exposures)
    share_total = math.fsum(expected_shares)
    statistic = 0.0
    for observed, share in zip(exposures, expected_shares, strict=True):
        expected = total * share / share_total
        statistic += (observed - expected) ** 2 / expected if expected else 0.0
    degrees_of_freedom = len(exposures) - 1
    p_value = chi_square_sf(statistic, degrees_of_freedom)
    return SampleRatioCheck(statistic, degrees_of_freedom, p_value, threshold, p_value < threshold)


def compare(control: VariantCounts, variant: VariantCounts, confidence: float = DEFAULT_CONFIDENCE) -> Comparison:
    """``variant`` against ``control``: absolute and relative lift with intervals, and the
    two-sided pooled z-test of equal rates.
    """
    z_critical = critical_value(confidence)
    if control.rate is None or variant.rate is None:
        return Comparison(None, None, None, None, None, None, frozenset({Caveat.NO_EXPOSURES}))
    caveats: set[Caveat] = set()
    if _small(control) or _small(variant):
        caveats.add(Caveat.SMALL_SAMPLE)
    z, p_value = _pooled_z_test(control, variant, caveats)
    difference = variant.rate - control.rate
    relative, relative_interval = _relative_lift(control, variant, z_critical, caveats)
    return Comparison(
        absolute_lift=difference,
        absolute_lift_interval=_wald_interval(control, variant, z_critical, caveats),
        relative_lift=relative,
        relative_lift_interval=relative_interval,
        z=z,
        p_value=p_value,
        caveats=frozenset(caveats),
    )


def _small(counts: VariantCounts) -> bool:
    """True when an arm has too few conversions or non-conversions for the normal approximation."""
    return min(counts.conversions, counts.exposures - counts.conversions) < MIN_OUTCOMES


def _variance(rate: float, exposures: int) -> float:
    """The binomial variance of an observed rate: p(1-p)/n."""
    return rate * (1.0 - rate) / exposures


def _pooled_z_test(
    control: VariantCounts, variant: VariantCounts, caveats: set[Caveat]
) -> tuple[float | None, float | None]:
    """The pooled test: z = (p_v - p_c) / sqrt(p(1-p)(1/n_v + 1/n_c)) with p the pooled rate,
    and its two-sided p-value erfc(|z|/√2).
    """
    pooled = (control.conversions + variant.conversions) / (control.exposures + variant.exposures)
    standard_error = math.sqrt(pooled * (1.0 - pooled) * (1.0 / control.exposures + 1.0 / variant.exposures))
    if standard_error == 0.0:
        caveats.add(Caveat.DEGENERATE)
        return None, None
    z = (variant.conversions / variant.exposures - control.conversions / control.exposures) / standard_error
    return z, 2.0 * normal_sf(abs(z))


def _wald_interval(
    control: VariantCounts, variant: VariantCounts, z_critical: float, caveats: set[Caveat]
) -> Interval | None:
    """(p_v - p_c) ± z · sqrt(p_v(1-p_v)/n_v + p_c(1-p_c)/n_c)."""
    p_c = control.conversions / control.exposures
    p_v = variant.conversions / variant.exposures
    standard_error = math.sqrt(_variance(p_v, variant.exposures) + _variance(p_c, control.exposures))
    if standard_error == 0.0:
        caveats.add(Caveat.DEGENERATE)
        return None
    margin = z_critical * standard_error
    return Interval(p_v - p_c - margin, p_v - p_c + margin)


def _relative_lift(
    control: VariantCounts, variant: VariantCounts, z_critical: float, caveats: set[Caveat]
) -> tuple[float | None, Interval | None]:
    """Relative lift r = p_v/p_c - 1 and its first-order delta-method interval,
    r ± z · sqrt(Var(p_v)/p_c² + p_v² Var(p_c)/p_c⁴).
    """
    p_c = control.conversions / control.exposures
    p_v = variant.conversions / variant.exposures
    if p_c == 0.0:
        caveats.add(Caveat.NO_CONTROL_CONVERSIONS)
        return None, None
    relative = p_v / p_c - 1.0
    variance = _variance(p_v, variant.exposures) / p_c**2 + p_v**2 * _variance(p_c, control.exposures) / p_c**4
    if variance == 0.0:
        caveats.add(Caveat.DEGENERATE)
        return relative, None
    margin = z_critical * math.sqrt(variance)
    return relative, Interval(relative - margin, relative + margin)
