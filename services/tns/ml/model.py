"""Fitting the linear text model with scikit-learn: the only module that touches
scikit-learn and scipy (untyped, so their values are turned into typed numpy arrays
here and nowhere else).

The featurization is `services.tns.domain.classifier.ngram_keys`, shared with inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix  # type: ignore[import-untyped]  # scipy ships no type stubs
from sklearn.feature_extraction.text import TfidfTransformer  # type: ignore[import-untyped]  # no stubs
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]  # no stubs

from services.tns.domain.classifier import ngram_keys

FloatArray = npt.NDArray[np.float64]
KeyArray = npt.NDArray[np.uint64]


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Everything that shapes the model besides the data; part of the artifact version."""

    min_df: int = 2
    """An n-gram must occur in this many training texts to enter the vocabulary."""
    max_features: int = 20_000
    """Vocabulary kept after pruning: the n-grams with the largest |weight| in any policy."""
    c: float = 30.0
    """Inverse L2 regularisation strength of each logistic regression."""
    class_weight: str | None = "balanced"
    folds: int = 4
    """Group folds over the training families for choosing thresholds."""
    min_precision: float | None = None
    """Threshold rule. None: the threshold maximising out-of-fold F1. A number: the lowest
    threshold whose out-of-fold precision reaches it (max-F1 when none does)."""

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-ready values."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class TextCounts:
    """The n-grams of one text: distinct keys (sorted) and how often each occurs."""

    keys: KeyArray
    counts: npt.NDArray[np.int64]


def count_ngrams(texts: Sequence[str]) -> list[TextCounts]:
    """Per text, its distinct n-gram keys and their counts (vocabulary-independent)."""
    out: list[TextCounts] = []
    for text in texts:
        keys, counts = np.unique(ngram_keys(text), return_counts=True)
        out.append(TextCounts(keys, counts.astype(np.int64)))
    return out


def build_vocabulary(docs: Sequence[TextCounts], min_df: int) -> KeyArray:
    """The sorted keys that occur in at least ``min_df`` of ``docs``."""
    if not docs:
        return np.zeros(0, dtype=np.uint64)
    keys, df = np.unique(np.concatenate([doc.keys for doc in docs]), return_counts=True)
    return keys[df >= min_df]


def count_matrix(docs: Sequence[TextCounts], vocabulary: KeyArray) -> Any:
    """The documents-by-vocabulary count matrix (scipy CSR); out-of-vocabulary n-grams
    are dropped, as at inference.
    """
    indptr = [0]
    indices: list[npt.NDArray[np.intp]] = []
    data: list[npt.NDArray[np.int64]] = []
    for doc in docs:
        pos = np.searchsorted(vocabulary, doc.keys)
        hit = pos < len(vocabulary)
        hit[hit] = vocabulary[pos[hit]] == doc.keys[hit]
        indices.append(pos[hit])
        data.append(doc.counts[hit])
        indptr.append(indptr[-1] + int(hit.sum()))
    return csr_matrix(
        (
            np.concatenate(data).astype(np.float64) if data else np.zeros(0),
            np.concatenate(indices) if indices else np.zeros(0, dtype=np.intp),
            np.array(indptr),
        ),
        shape=(len(docs), len(vocabulary)),
    )


@dataclass(frozen=True, slots=True)
class FittedModel:
    """A fitted model in plain arrays, plus the scikit-learn objects that computed it
    (kept to check inference against ``predict_proba``).
    """

    vocabulary: KeyArray
    idf: FloatArray
    weights: FloatArray
    """Shape (vocabulary, policies)."""
    bias: FloatArray
    tfidf: Any
    estimators: tuple[Any, ...]

    def predict_proba(self, docs: Sequence[TextCounts]) -> FloatArray:
        """Per document and policy, scikit-learn's probability of the positive class."""
        x = self.tfidf.transform(count_matrix(docs, self.vocabulary))
        return np.column_stack([np.asarray(est.predict_proba(x)[:, 1], dtype=np.float64) for est in self.estimators])


def _fit_once(
    docs: Sequence[TextCounts], y: npt.NDArray[np.bool_], vocabulary: KeyArray, config: TrainConfig
) -> FittedModel:
    tfidf = TfidfTransformer(norm="l2", use_idf=True, smooth_idf=True, sublinear_tf=True)
    x = tfidf.fit_transform(count_matrix(docs, vocabulary))
    estimators = []
    for p in range(y.shape[1]):
        estimator = LogisticRegression(
            C=config.c, class_weight=config.class_weight, solver="liblinear", random_state=0, max_iter=1000
        )
        estimators.append(estimator.fit(x, y[:, p].astype(np.int64)))
    return FittedModel(
        vocabulary=vocabulary,
        idf=np.asarray(tfidf.idf_, dtype=np.float64),
        weights=np.column_stack([np.asarray(est.coef_[0], dtype=np.float64) for est in estimators]),
        bias=np.array([float(est.intercept_[0]) for est in estimators], dtype=np.float64),
        tfidf=tfidf,
        estimators=tuple(estimators),
    )


def fit(docs: Sequence[TextCounts], y: npt.NDArray[np.bool_], config: TrainConfig) -> FittedModel:
    """Fit on ``docs`` (labels ``y``: documents x policies): vocabulary by document
    frequency, a first fit, pruning to the ``max_features`` n-grams with the largest
    |weight| in any policy, and a refit on that vocabulary, so the pruned model is itself
    a true logistic regression (not a truncated one).
    """
    first = _fit_once(docs, y, build_vocabulary(docs, config.min_df), config)
    if len(first.vocabulary) <= config.max_features:
        return first
    importance = np.abs(first.weights).max(axis=1)
    keep = np.sort(np.argsort(-importance, kind="stable")[: config.max_features])
    return _fit_once(docs, y, first.vocabulary[keep], config)
