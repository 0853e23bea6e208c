"""Writing the classifier artifact `services.tns.domain.classifier` loads: gzipped JSON,
byte-identical for the same model (sorted keys, exact float encodings, no gzip mtime).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from services.tns.domain.classifier import (
    ARTIFACT_FORMAT,
    DEFAULT_ARTIFACT,
    FEATURIZER,
    encode_array,
    key_to_ngram,
)
from services.tns.domain.content import POLICIES
from services.tns.ml.model import FittedModel

ARTIFACT_PATH = DEFAULT_ARTIFACT
METRICS_PATH = DEFAULT_ARTIFACT.parent / "metrics.json"


def model_version(dataset_files: tuple[Path, ...], config: Mapping[str, Any]) -> str:
    """``text-clf-`` and the first 12 hex digits of SHA-256 over the dataset bytes, the
    training config and the featurizer name: same data and code, same version.
    """
    digest = hashlib.sha256()
    for path in dataset_files:
        digest.update(path.read_bytes())
    digest.update(json.dumps(dict(config), sort_keys=True).encode())
    digest.update(FEATURIZER.encode())
    return f"text-clf-{digest.hexdigest()[:12]}"


def build_document(
    model: FittedModel,
    *,
    version: str,
    dataset_sha256: str,
    config: Mapping[str, Any],
    thresholds: Mapping[str, float],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The artifact document for ``model`` (what `write_artifact` stores)."""
    if set(thresholds) != set(POLICIES):
        raise ValueError(f"thresholds for {sorted(thresholds)}, expected {sorted(POLICIES)}")
    return {
        "format": ARTIFACT_FORMAT,
        "featurizer": FEATURIZER,
        "version": version,
        "dataset_sha256": dataset_sha256,
        "config": dict(config),
        "policies": list(POLICIES),
        "thresholds": {policy: float(thresholds[policy]) for policy in POLICIES},
        "vocabulary": [key_to_ngram(int(key)) for key in model.vocabulary],
        "idf": encode_array(model.idf),
        "weights": encode_array(model.weights),
        "bias": [float(b) for b in model.bias],
        **(extra or {}),
    }


def canonical_bytes(document: Mapping[str, Any]) -> bytes:
    """The gzipped, canonical JSON encoding of ``document``."""
    raw = json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return gzip.compress(raw, compresslevel=9, mtime=0)


def write_artifact(document: Mapping[str, Any], path: Path = ARTIFACT_PATH) -> int:
    """Write the artifact to ``path``; returns its size in bytes."""
    data = canonical_bytes(document)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return len(data)
