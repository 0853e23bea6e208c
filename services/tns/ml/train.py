"""Train the Trust & Safety text classifier and evaluate it on the held-out families.

    .venv/bin/python -m services.tns.ml.train           # writes the artifact and metrics
    .venv/bin/python -m services.tns.ml.train --dry-run # trains and prints, writes nothing

1. Read the committed dataset; rows of held-out families are set aside untouched.
2. Split the training families into group folds; fit on all but one fold, score the
   left-out fold, so every training row gets an out-of-fold score from a model that never
   saw its family.
3. Per policy, choose the threshold from those out-of-fold scores: the one maximising F1
   (`TrainConfig.min_precision` switches to a precision floor).
4. Fit the final model on every training row, score the held-out rows, report.
5. Write the artifact (model, thresholds, version, dataset digest, held-out metrics,
   reference scores from scikit-learn) and metrics.json.

Deterministic: the same data and code give a byte-identical artifact.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from services.tns.domain.content import POLICIES
from services.tns.ml.artifact import ARTIFACT_PATH, METRICS_PATH, build_document, model_version, write_artifact
from services.tns.ml.dataset import DATA_FILES, HELDOUT, TRAIN, Example, dataset_digest, read_examples
from services.tns.ml.metrics import PolicyMetrics, Threshold, choose_threshold, evaluate
from services.tns.ml.model import FittedModel, TextCounts, TrainConfig, count_ngrams, fit

# Texts whose scikit-learn scores are stored in the artifact, so a test can check that
# inference reproduces predict_proba without scikit-learn or retraining.
REFERENCE_TEXTS: tuple[str, ...] = (
    "銀行口座に振り込んでください",
    "LINEのIDは taro_123 です。そちらで話しましょう",
    "ルイヴィトン 長財布 N級品 本物と見分けがつきません",
    "賞味期限切れのチョコレートです。未開封",
    "乾燥大麻 5g 匿名配送します",
    "値下げしろよバカ",
    "Brand-new Louis Vuitton wallet with receipt",
    "Delayed a day because of the bank holiday, sorry!",
    "Knife sharpener, works great",
    "best before 2027-03, sealed",
    "ご購入ありがとうございます。明日発送いたします。",
    "",
)


@dataclass(frozen=True, slots=True)
class TrainingResult:
    """What a training run produced."""

    model: FittedModel
    thresholds: dict[str, Threshold]
    heldout: dict[str, PolicyMetrics]
    document: dict[str, Any]
    metrics: dict[str, Any]


def label_matrix(examples: Sequence[Example]) -> npt.NDArray[np.bool_]:
    """Rows x `POLICIES`: True where the row violates the policy."""
    return np.array([[policy in ex.labels for policy in POLICIES] for ex in examples], dtype=bool).reshape(
        len(examples), len(POLICIES)
    )


def group_folds(examples: Sequence[Example], folds: int) -> npt.NDArray[np.int64]:
    """Per row, its fold: families of each (language, first label) bucket are dealt out
    round-robin in a fixed hash order, so every fold sees every kind of content.
    """
    buckets: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
    for ex in examples:
        buckets[ex.lang, ex.labels[0] if ex.labels else "clean"].add(ex.group)
    fold_of: dict[str, int] = {}
    for groups in buckets.values():
        for i, group in enumerate(sorted(groups, key=lambda g: hashlib.sha256(g.encode()).hexdigest())):
            fold_of[group] = i % folds
    return np.array([fold_of[ex.group] for ex in examples], dtype=np.int64)


def out_of_fold_scores(
    docs: Sequence[TextCounts], y: npt.NDArray[np.bool_], folds: npt.NDArray[np.int64], config: TrainConfig
) -> npt.NDArray[np.float64]:
    """Per row and policy, the score of a model fitted without the row's family."""
    scores = np.zeros(y.shape, dtype=np.float64)
    for fold in range(config.folds):
        test = np.flatnonzero(folds == fold)
        train = np.flatnonzero(folds != fold)
        model = fit([docs[i] for i in train.tolist()], y[train], config)
        scores[test] = model.predict_proba([docs[i] for i in test.tolist()])
    return scores


def _rule_text(config: TrainConfig) -> str:
    where = f"out-of-fold scores ({config.folds} group folds over the training families)"
    if config.min_precision is None:
        return f"per policy, the threshold maximising F1 on {where}"
    return f"per policy, the lowest threshold with precision >= {config.min_precision} on {where}, else max-F1"


def _report(metrics: dict[str, PolicyMetrics]) -> dict[str, Any]:
    return {policy: m.to_dict() for policy, m in metrics.items()}


def _evaluate_all(
    scores: npt.NDArray[np.float64], y: npt.NDArray[np.bool_], thresholds: dict[str, Threshold]
) -> dict[str, PolicyMetrics]:
    return {policy: evaluate(scores[:, p], y[:, p], thresholds[policy].value) for p, policy in enumerate(POLICIES)}


def train(config: TrainConfig) -> TrainingResult:
    """Run the whole procedure of the module docstring; writes nothing."""
    examples = read_examples(DATA_FILES)
    train_rows = [ex for ex in examples if ex.split == TRAIN]
    held_rows = [ex for ex in examples if ex.split == HELDOUT]
    shared = {ex.group for ex in train_rows} & {ex.group for ex in held_rows}
    if shared:
        raise ValueError(f"families on both sides of the split: {sorted(shared)}")

    train_docs = count_ngrams([ex.text for ex in train_rows])
    y_train = label_matrix(train_rows)
    oof = out_of_fold_scores(train_docs, y_train, group_folds(train_rows, config.folds), config)
    thresholds = {
        policy: choose_threshold(oof[:, p], y_train[:, p], config.min_precision) for p, policy in enumerate(POLICIES)
    }

    model = fit(train_docs, y_train, config)
    y_held = label_matrix(held_rows)
    held_scores = model.predict_proba(count_ngrams([ex.text for ex in held_rows]))
    heldout = _evaluate_all(held_scores, y_held, thresholds)
    flagged = np.column_stack([held_scores[:, p] >= thresholds[pol].value for p, pol in enumerate(POLICIES)])
    clean = ~y_held.any(axis=1)
    by_lang = {
        lang: _report(_evaluate_all(held_scores[mask], y_held[mask], thresholds))
        for lang in ("ja", "en")
        if (mask := np.array([ex.lang == lang for ex in held_rows])).any()
    }
    tp = sum(m.true_positives for m in heldout.values())
    n_flagged, support = sum(m.flagged for m in heldout.values()), sum(m.support for m in heldout.values())
    micro_p, micro_r = tp / max(n_flagged, 1), tp / max(support, 1)
    metrics: dict[str, Any] = {
        "threshold_rule": _rule_text(config),
        "thresholds": {
            policy: {
                "value": round(t.value, 6),
                "oof_precision": round(t.precision, 4),
                "oof_recall": round(t.recall, 4),
                "rule": t.rule,
            }
            for policy, t in thresholds.items()
        },
        "train": {"rows": len(train_rows), "groups": len({ex.group for ex in train_rows})},
        "heldout": {
            "rows": len(held_rows),
            "groups": sorted({ex.group for ex in held_rows}),
            "per_policy": _report(heldout),
            "micro": {
                "precision": round(micro_p, 4),
                "recall": round(micro_r, 4),
                "f1": round(2 * micro_p * micro_r / max(micro_p + micro_r, 1e-12), 4),
            },
            "clean_rows": int(clean.sum()),
            "clean_rows_flagged": int(flagged[clean].any(axis=1).sum()),
            "by_lang": by_lang,
        },
        "vocabulary": len(model.vocabulary),
    }
    reference = model.predict_proba(count_ngrams(REFERENCE_TEXTS))
    digest = dataset_digest(DATA_FILES)
    version = model_version(DATA_FILES, config.to_dict())
    metrics = {"version": version, "dataset_sha256": digest, "config": config.to_dict(), **metrics}
    document = build_document(
        model,
        version=version,
        dataset_sha256=digest,
        config=config.to_dict(),
        thresholds={policy: t.value for policy, t in thresholds.items()},
        extra={
            "metrics": metrics["heldout"]["per_policy"],
            "reference": [
                {"text": text, "scores": dict(zip(POLICIES, row.tolist(), strict=True))}
                for text, row in zip(REFERENCE_TEXTS, reference, strict=True)
            ],
        },
    )
    return TrainingResult(model, thresholds, heldout, document, metrics)


def format_table(result: TrainingResult) -> str:
    """The held-out metrics as a Markdown table."""
    out = [
        "| policy | threshold | support | precision | recall | F1 | avg. precision |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for policy in POLICIES:
        m, t = result.heldout[policy], result.thresholds[policy]
        out.append(
            f"| {policy} | {t.value:.3f} | {m.support} | {m.precision:.3f} | {m.recall:.3f} | {m.f1:.3f} |"
            f" {m.average_precision:.3f} |"
        )
    micro = result.metrics["heldout"]["micro"]
    out.append(f"| micro | | | {micro['precision']:.3f} | {micro['recall']:.3f} | {micro['f1']:.3f} | |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    """Train, print the held-out table, write the artifact and metrics (unless --dry-run)."""
    parser = argparse.ArgumentParser(description="Train the Trust & Safety text classifier.")
    parser.add_argument("--dry-run", action="store_true", help="train and report, write nothing")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = train(TrainConfig())
    elapsed = time.perf_counter() - started
    held = result.metrics["heldout"]
    print(f"version {result.document['version']}  dataset {result.document['dataset_sha256'][:12]}")
    print(f"train {result.metrics['train']['rows']} rows; held-out {held['rows']} rows, {len(held['groups'])} families")
    print(f"vocabulary {result.metrics['vocabulary']} n-grams; trained in {elapsed:.1f} s")
    print(format_table(result))
    print(f"clean held-out rows flagged for any policy: {held['clean_rows_flagged']} / {held['clean_rows']}")
    if args.dry_run:
        return
    size = write_artifact(result.document, ARTIFACT_PATH)
    METRICS_PATH.write_text(json.dumps(result.metrics, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    print(f"wrote {ARTIFACT_PATH} ({size / 1e6:.2f} MB) and {METRICS_PATH}")


if __name__ == "__main__":
    main()
