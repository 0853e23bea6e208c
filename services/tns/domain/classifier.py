"""The trained text classifier at inference time: featurization shared with training,
and a linear one-vs-rest model loaded from the artifact that `services.tns.ml.train`
writes. Pure Python and numpy; scikit-learn is needed only to train.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from services.tns.domain.content import POLICIES, TextClassifier

ARTIFACT_FORMAT: Final = "furima.tns.text-clf/1"
FEATURIZER: Final = "nfkc-lower-ws-despace/char1-4/tfidf-sublinear-l2/v1"
"""Names the featurization below; an artifact trained with another one is refused."""
DEFAULT_ARTIFACT: Final = Path(__file__).resolve().parents[1] / "ml" / "artifacts" / "text_clf.json.gz"

NGRAM_MAX: Final = 4
# A character is packed into 16 bits of an n-gram key, so a 4-gram fits in a uint64
# and n-gram lookup is a vectorised binary search instead of a Python loop.
_BITS: Final = 16

# Zero-width characters, soft hyphens and control characters are dropped: they are
# invisible, so their only use in marketplace text is hiding a word from filters.
# (A regex, not str.translate: a translate table costs ~40 ns a character.)
_INVISIBLE: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\xad\u200b-\u200d\u2060\ufeff]")
# Three or more single characters separated by single spaces or dots ("L I N E",
# "現 金 手 渡 し", "0.9.0"): the usual way to spell a word past a keyword filter.
_SPACED_OUT: Final = re.compile(r"(?<!\S)\S(?:[ ._\-・*/]\S){2,}")


class ArtifactError(Exception):
    """The classifier artifact is missing, unreadable or does not fit this code."""


def normalize(text: str) -> str:
    """The text as the model sees it: NFKC (full-width and half-width forms folded),
    lower case, invisible characters dropped, whitespace collapsed, spaced-out words
    joined.
    """
    folded = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text).lower())
    collapsed = " ".join(folded.split())
    return _SPACED_OUT.sub(_join_spaced_out, collapsed)


def _join_spaced_out(match: re.Match[str]) -> str:
    return match.group()[::2]


def ngram_keys(text: str) -> npt.NDArray[np.uint64]:
    """Every character 1- to 4-gram of the normalized ``text`` (padded with a space at
    both ends so word starts and ends are visible), one uint64 key each, repeats kept.

    Keys are exact, not hashed: a key of an n-gram has its first character in the
    highest of ``n`` 16-bit fields, and no character packs to 0, so n-grams of different
    lengths never share a key. Characters outside the BMP (emoji) fold into the private
    use area, which keeps the common emoji distinct.
    """
    padded = f" {normalize(text)} "
    cps = np.frombuffer(padded.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    astral = cps > 0xFFFF
    if astral.any():
        cps[astral] = 0xE000 + (cps[astral] & 0xFFF)
    parts = [cps]
    key = cps
    for n in range(2, NGRAM_MAX + 1):
        if len(cps) < n:
            break
        key = (key[:-1] << np.uint64(_BITS)) | cps[n - 1 :]
        parts.append(key)
    return np.concatenate(parts)


def ngram_key(gram: str) -> int:
    """The key `ngram_keys` gives the (already normalized and folded) n-gram ``gram``."""
    key = 0
    for char in gram:
        key = (key << _BITS) | ord(char)
    return key


def key_to_ngram(key: int) -> str:
    """The n-gram a key stands for (the inverse of `ngram_key`): how the artifact stores
    its vocabulary readably.
    """
    chars: list[str] = []
    while key:
        chars.append(chr(key & 0xFFFF))
        key >>= _BITS
    return "".join(reversed(chars))


class LinearTextClassifier:
    """One logistic regression per policy over TF-IDF weighted character n-grams.

    ``scores`` is ``sigmoid(x · w + b)`` with ``x`` the l2-normalised, sublinear TF-IDF
    vector of the text's in-vocabulary n-grams: exactly what scikit-learn's
    ``TfidfTransformer`` + ``LogisticRegression.predict_proba`` compute in training.
    """

    def __init__(
        self,
        *,
        version: str,
        vocabulary: list[str],
        idf: npt.NDArray[np.float64],
        weights: npt.NDArray[np.float64],
        bias: npt.NDArray[np.float64],
        thresholds: Mapping[str, float],
    ) -> None:
        n = len(vocabulary)
        if idf.shape != (n,) or weights.shape != (n, len(POLICIES)) or bias.shape != (len(POLICIES),):
            raise ArtifactError(
                f"artifact shapes disagree: {n} n-grams, idf {idf.shape}, weights {weights.shape}, bias {bias.shape}"
            )
        if set(thresholds) != set(POLICIES):
            raise ArtifactError(f"thresholds are for {sorted(thresholds)}, expected {sorted(POLICIES)}")
        if not all(0.0 <= float(t) <= 1.0 for t in thresholds.values()):
            raise ArtifactError(f"thresholds must lie in [0, 1]: {dict(thresholds)}")
        if not (np.isfinite(idf).all() and np.isfinite(weights).all() and np.isfinite(bias).all()):
            raise ArtifactError("artifact has non-finite idf, weights or bias")
        keys = np.array([ngram_key(gram) for gram in vocabulary], dtype=np.uint64)
        order = np.argsort(keys, kind="stable")
        self._keys = keys[order]
        if len(self._keys) and np.any(self._keys[1:] == self._keys[:-1]):
            raise ArtifactError("artifact vocabulary has duplicate n-grams")
        self._idf = np.ascontiguousarray(idf[order])
        self._weights = np.ascontiguousarray(weights[order])
        self._bias = bias.copy()
        self._version = version
        # Read-only: callers share one cached instance per process.
        self._thresholds = MappingProxyType({policy: float(thresholds[policy]) for policy in POLICIES})

    @property
    def version(self) -> str:
        """Identifies the artifact (recorded with every decision)."""
        return self._version

    @property
    def thresholds(self) -> Mapping[str, float]:
        """Per policy, the score at or above which the model flags the text."""
        return self._thresholds

    def scores(self, text: str) -> dict[str, float]:
        """Per policy in `POLICIES`, the probability in [0, 1] that ``text`` violates it."""
        z = self.decision(text)
        probabilities = 1.0 / (1.0 + np.exp(-z))
        return dict(zip(POLICIES, probabilities.tolist(), strict=True))

    def decision(self, text: str) -> npt.NDArray[np.float64]:
        """Per policy (in `POLICIES` order), the linear score ``x · w + b`` before the sigmoid."""
        # Distinct n-grams first: it yields the counts, and sorted queries make the
        # binary search into the (sorted) vocabulary cache-friendly.
        keys, counts = np.unique(ngram_keys(text), return_counts=True)
        columns = np.searchsorted(self._keys, keys)
        # A key past the last vocabulary entry gets index len(vocab): clip, then compare.
        np.minimum(columns, len(self._keys) - 1, out=columns)
        hit = self._keys[columns] == keys
        if not hit.any():
            return self._bias.copy()
        columns = columns[hit]
        x = (1.0 + np.log(counts[hit])) * self._idf[columns]
        x /= np.sqrt(x @ x)
        z: npt.NDArray[np.float64] = x @ self._weights[columns] + self._bias
        return z

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> LinearTextClassifier:
        """Build the classifier from a parsed artifact document (see `load_classifier`)."""
        try:
            if document["format"] != ARTIFACT_FORMAT:
                raise ArtifactError(f"artifact format is {document['format']!r}, expected {ARTIFACT_FORMAT!r}")
            if document["featurizer"] != FEATURIZER:
                raise ArtifactError(
                    f"artifact was trained with featurizer {document['featurizer']!r}, this code has {FEATURIZER!r}:"
                    " retrain it (python -m services.tns.ml.train)"
                )
            if tuple(document["policies"]) != POLICIES:
                raise ArtifactError(f"artifact policies {document['policies']} do not match POLICIES {list(POLICIES)}")
            vocabulary = [str(gram) for gram in document["vocabulary"]]
            n = len(vocabulary)
            return cls(
                version=str(document["version"]),
                vocabulary=vocabulary,
                idf=_decode_array(document["idf"], (n,)),
                weights=_decode_array(document["weights"], (n, len(POLICIES))),
                bias=np.array(document["bias"], dtype=np.float64),
                thresholds={str(policy): float(value) for policy, value in document["thresholds"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ArtifactError(f"artifact is malformed: {type(exc).__name__}: {exc}") from exc


def encode_array(array: npt.NDArray[np.float64]) -> str:
    """A float64 array as base64 of its little-endian bytes: exact and compact in JSON."""
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f8").tobytes()).decode("ascii")


def _decode_array(encoded: str, shape: tuple[int, ...]) -> npt.NDArray[np.float64]:
    raw = base64.b64decode(encoded.encode("ascii"), validate=True)
    return np.frombuffer(raw, dtype="<f8").astype(np.float64).reshape(shape)


def read_artifact(path: Path) -> dict[str, Any]:
    """The parsed artifact document at ``path`` (gzipped JSON)."""
    try:
        document = json.loads(gzip.decompress(path.read_bytes()))
    except FileNotFoundError as exc:
        raise ArtifactError(
            f"classifier artifact not found at {path}: train it with python -m services.tns.ml.train"
        ) from exc
    except (OSError, EOFError, ValueError) as exc:
        raise ArtifactError(f"classifier artifact at {path} is corrupt: {type(exc).__name__}: {exc}") from exc
    if not isinstance(document, dict):
        raise ArtifactError(f"classifier artifact at {path} is not a JSON object")
    return document


def load_classifier(path: Path | None = None) -> LinearTextClassifier:
    """The classifier in the artifact at ``path`` (default: the committed one), loaded
    once per process and path. Raises `ArtifactError` when the artifact is missing,
    corrupt, or its policies or featurizer do not match this code.
    """
    return _load((path or DEFAULT_ARTIFACT).resolve())


@functools.cache
def _load(path: Path) -> LinearTextClassifier:
    # functools.cache does not cache a raised exception: a fixed artifact loads on retry.
    try:
        return LinearTextClassifier.from_document(read_artifact(path))
    except ArtifactError as exc:
        if str(path) in str(exc):
            raise
        raise ArtifactError(f"{path}: {exc}") from exc


if TYPE_CHECKING:  # mypy proves the class satisfies the protocol the rule engine depends on

    def _implements_text_classifier(classifier: LinearTextClassifier) -> TextClassifier:
        return classifier
