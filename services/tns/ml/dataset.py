"""The committed Trust & Safety text dataset: where it lives, how a row reads, and the
digest that ties a trained artifact to the exact data it was trained on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from services.tns.domain.content import POLICIES, Content, ContentKind

DATA_DIR = Path(__file__).resolve().parent / "data"
DATA_FILES: tuple[Path, ...] = (DATA_DIR / "tns_text.jsonl",)
TRAIN = "train"
HELDOUT = "heldout"


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled row: a listing, comment or transaction message."""

    id: str
    group: str
    """The template family it was generated from; the split never divides a group."""
    split: str
    kind: str
    lang: str
    title: str
    body: str
    category: str
    price: int | None
    currency: str
    labels: tuple[str, ...]
    """Policies violated; empty when clean."""

    @property
    def text(self) -> str:
        """The text the classifier sees, exactly as production builds it from a `Content`."""
        return Content(ContentKind(self.kind), self.id, "dataset", self.title, self.body).text

    def to_json(self) -> str:
        """The row as one JSONL line (UTF-8, keys in a fixed order)."""
        return json.dumps(
            {
                "id": self.id,
                "group": self.group,
                "split": self.split,
                "kind": self.kind,
                "lang": self.lang,
                "title": self.title,
                "body": self.body,
                "category": self.category,
                "price": self.price,
                "currency": self.currency,
                "labels": list(self.labels),
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, line: str) -> Example:
        """Parse a JSONL line written by `to_json`."""
        raw = json.loads(line)
        labels = tuple(raw["labels"])
        unknown = set(labels) - set(POLICIES)
        if unknown:
            raise ValueError(f"row {raw['id']}: unknown policies {sorted(unknown)}")
        return cls(
            id=raw["id"],
            group=raw["group"],
            split=raw["split"],
            kind=raw["kind"],
            lang=raw["lang"],
            title=raw["title"],
            body=raw["body"],
            category=raw["category"],
            price=raw["price"],
            currency=raw["currency"],
            labels=labels,
        )


def read_examples(paths: tuple[Path, ...] = DATA_FILES) -> list[Example]:
    """Every row of the dataset files, in file order."""
    return [
        Example.from_json(line)
        for path in paths
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def dataset_digest(paths: tuple[Path, ...] = DATA_FILES) -> str:
    """SHA-256 (hex) over the dataset files' names and bytes, in order."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()
