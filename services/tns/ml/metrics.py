"""Choosing per-policy thresholds and measuring precision, recall and F1."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Threshold:
    """A chosen threshold and what it achieved on the data it was chosen on."""

    value: float
    precision: float
    recall: float
    rule: str
    """``min_precision`` when a precision floor was asked for and reached, else ``max_f1``."""


def choose_threshold(
    scores: npt.NDArray[np.float64], truth: npt.NDArray[np.bool_], min_precision: float | None = None
) -> Threshold:
    """The threshold (flag when score >= threshold) with the highest F1 on ``scores``;
    with ``min_precision``, the lowest threshold whose precision reaches it (the most
    recall that precision floor allows), falling back to max-F1 when none does.

    Candidates lie halfway (in log-odds) between consecutive distinct scores, so the
    threshold does not sit on one training example's score.
    """
    if not truth.any():
        raise ValueError("no positive examples to choose a threshold from")
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], truth[order]
    tp = np.cumsum(t)
    flagged = np.arange(1, len(s) + 1)
    # Only cut where the score changes: rows with equal scores are flagged together.
    cut = np.append(s[1:] < s[:-1], True)
    precision = (tp / flagged)[cut]
    recall = (tp / t.sum())[cut]
    lower = np.append(s[1:], 0.0)[cut]
    upper = s[cut]
    ok = np.flatnonzero(precision >= min_precision) if min_precision is not None else np.zeros(0, dtype=np.intp)
    if len(ok):
        i, rule = int(ok[-1]), "min_precision"
    else:
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        i, rule = int(np.argmax(f1)), "max_f1"
    return Threshold(_midpoint(float(upper[i]), float(lower[i])), float(precision[i]), float(recall[i]), rule)


def _midpoint(upper: float, lower: float) -> float:
    """The probability halfway between two probabilities in log-odds."""
    eps = 1e-9

    def logit(p: float) -> float:
        p = min(max(p, eps), 1 - eps)
        return float(np.log(p / (1 - p)))

    return float(1.0 / (1.0 + np.exp(-(logit(upper) + logit(lower)) / 2)))


@dataclass(frozen=True, slots=True)
class PolicyMetrics:
    """Precision, recall and F1 of one policy at its threshold."""

    support: int
    flagged: int
    true_positives: int
    precision: float
    recall: float
    f1: float
    average_precision: float
    """Area under the precision-recall curve: ranking quality, threshold-free."""

    def to_dict(self) -> dict[str, float | int]:
        """JSON-ready, rounded to four decimals."""
        return {
            "support": self.support,
            "flagged": self.flagged,
            "true_positives": self.true_positives,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "average_precision": round(self.average_precision, 4),
        }


def evaluate(scores: npt.NDArray[np.float64], truth: npt.NDArray[np.bool_], threshold: float) -> PolicyMetrics:
    """Metrics of flagging ``score >= threshold`` against ``truth``."""
    flagged = scores >= threshold
    tp = int((flagged & truth).sum())
    n_flagged, support = int(flagged.sum()), int(truth.sum())
    precision = tp / n_flagged if n_flagged else 0.0
    recall = tp / support if support else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PolicyMetrics(support, n_flagged, tp, precision, recall, f1, average_precision(scores, truth))


def average_precision(scores: npt.NDArray[np.float64], truth: npt.NDArray[np.bool_]) -> float:
    """Mean of the precision at each positive's rank (scikit-learn's definition)."""
    if not truth.any():
        return 0.0
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], truth[order]
    cut = np.append(s[1:] < s[:-1], True)
    tp = np.cumsum(t)[cut]
    flagged = np.arange(1, len(s) + 1)[cut]
    recall_step = np.diff(np.concatenate([[0], tp])) / t.sum()
    return float((recall_step * tp / flagged).sum())
