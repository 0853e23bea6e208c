"""Generate the synthetic Trust & Safety dataset from the hand-written templates.

    python -m services.tns.ml.generate            # writes services/tns/ml/data/tns_text.jsonl

Deterministic: every family draws from its own random stream seeded by ``SEED`` and its
group name, so the output is byte-identical run to run, and editing one family leaves
the others' rows unchanged.

The held-out split is by family: within each (language, first label or "clean")
bucket, a fixed hash of the group name orders the families and the first quarter
(at least one) is held out. Word pools keep their last fifth for held-out families, so
held-out rows bring unseen phrasings and some unseen words (a new drug name, brand...).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

from services.tns.domain.content import POLICIES
from services.tns.ml import noise
from services.tns.ml.dataset import DATA_FILES, HELDOUT, TRAIN, Example
from services.tns.ml.templates import FAMILIES, Family
from services.tns.ml.templates.family import LISTING
from services.tns.ml.templates.fillers import GENERATED, POOLS

SEED = 20260512
HELDOUT_SHARE = 0.25
DISGUISE_RATE = 0.15
_INNERMOST = re.compile(r"\{([^{}]*)\}")

# Listing boilerplate, shared by clean and violating listings alike, as on the real
# marketplace: it must carry no signal either way.
_OPENERS = {
    "ja": ("ご覧いただきありがとうございます。", "【プロフィール必読】", "即購入OKです。", "#断捨離中"),
    "en": ("Thanks for stopping by!", "Read my profile before buying.", "Ready to ship.", "Price firm."),
}
_CLOSERS = {
    "ja": (
        "他にも出品していますので、ぜひご覧ください。",
        "お値下げ交渉はコメントでどうぞ。",
        "24時間以内に発送します。",
        "#まとめ売り",
        "気になる点はコメントでお気軽にどうぞ。",
        "よろしくお願いします。",
    ),
    "en": (
        "Check out my other listings!",
        "Open to reasonable offers.",
        "Ships within 24 hours.",
        "Bundle to save.",
        "Feel free to ask questions in the comments.",
        "No trades.",
    ),
}


def _stream(*parts: str) -> random.Random:
    seed = hashlib.sha256(":".join((str(SEED), *parts)).encode()).digest()
    return random.Random(int.from_bytes(seed[:8], "big"))  # noqa: S311 - data generation, not security


def heldout_groups(families: Iterable[Family]) -> frozenset[str]:
    """The groups held out for evaluation (see the module docstring)."""
    buckets: defaultdict[tuple[str, str], list[str]] = defaultdict(list)
    for family in families:
        buckets[family.lang, family.labels[0] if family.labels else "clean"].append(family.group)
    held: set[str] = set()
    for groups in buckets.values():
        ranked = sorted(groups, key=lambda g: hashlib.sha256(f"{SEED}:split:{g}".encode()).hexdigest())
        held.update(ranked[: max(1, int(len(ranked) * HELDOUT_SHARE + 0.5))])
    return frozenset(held)


class _Filler:
    """Fills one family's templates; held-out families may use a pool's reserved tail.

    Within a row, a slot keeps its value (a title and body name the same drug, the same
    amount), except the pools meant to repeat with variety (`_FREE_SLOTS`).
    """

    def __init__(self, lang: str, rng: random.Random, heldout: bool) -> None:
        self._lang, self._rng, self._heldout = lang, rng, heldout
        self._row: dict[str, str] = {}

    def new_row(self) -> None:
        """Forget the slot values of the previous row."""
        self._row.clear()

    def fill(self, template: str) -> str:
        """``template`` with every alternative chosen and every slot filled."""
        # Innermost braces first, so slots inside alternatives and alternatives inside
        # slot values both resolve.
        text = template
        while (resolved := _INNERMOST.sub(self._resolve, text)) != text:
            text = resolved
        return text

    def _resolve(self, match: re.Match[str]) -> str:
        inner = match.group(1)
        if "|" in inner:
            return self._rng.choice(_alternatives(inner))
        if inner not in self._row or inner in _FREE_SLOTS:
            self._row[inner] = self._draw(inner)
        return self._row[inner]

    def _draw(self, slot: str) -> str:
        for name in (f"{self._lang}_{slot}", slot):
            if name in GENERATED:
                return GENERATED[name](self._rng)
            if name in POOLS:
                return self._rng.choice(self._pool(POOLS[name]))
        raise KeyError(f"no filler for slot {{{slot}}}")

    def _pool(self, values: tuple[str, ...]) -> tuple[str, ...]:
        if self._heldout or len(values) < 5:
            return values
        return values[: len(values) - len(values) // 5]


_FREE_SLOTS = frozenset({"ja_desc", "en_desc", "emoji", "ja_insult", "en_insult"})


def _alternatives(inner: str) -> list[str]:
    """``a|b`` is a or b; ``|a|b|`` is a or b too; ``|a|`` is a or nothing."""
    parts = inner.split("|")
    if len(parts) >= 3 and parts[0] == "" and parts[-1] == "":
        core = parts[1:-1]
        return core if len(core) > 1 else ["", core[0]]
    return parts


def _price(family: Family, rng: random.Random) -> tuple[int, str]:
    low, high = family.prices
    if family.lang == "ja":
        return max(300, round(rng.randint(low, high), -2)), "JPY"
    return rng.randint(low, high) * 100, "USD"  # minor units: cents


def generate_family(family: Family, heldout: bool) -> list[Example]:
    """The rows of one family (duplicates skipped)."""
    unknown = set(family.labels) - set(POLICIES)
    if unknown:
        raise ValueError(f"{family.group}: unknown policies {sorted(unknown)}")
    rng = _stream(family.group)
    filler = _Filler(family.lang, rng, heldout)
    lang = family.lang
    rows: list[Example] = []
    seen: set[tuple[str, str]] = set()
    for _ in range(family.rows * 5):
        if len(rows) == family.rows:
            break
        kind = rng.choice(family.kinds)
        filler.new_row()
        template = rng.choice(family.templates)
        title, category, price, currency = "", "", None, ""
        if kind == LISTING:
            title_template, template, *fixed = (part.strip() for part in template.split("||"))
            title = noise.resolve_marks(filler.fill(title_template), rng, DISGUISE_RATE)
            category = fixed[0] if fixed else rng.choice(family.categories)
            price, currency = _price(family, rng)
        body = filler.fill(template).replace("¶", "\n")
        if kind == LISTING:
            if rng.random() < 0.35:
                body = rng.choice(_OPENERS[lang]) + ("" if lang == "ja" else " ") + body
            if rng.random() < 0.35:
                body = body + ("" if lang == "ja" else " ") + rng.choice(_CLOSERS[lang])
        body = noise.roughen(noise.resolve_marks(body, rng, DISGUISE_RATE), lang, rng, POOLS["emoji"])
        if (title, body) in seen:
            continue
        seen.add((title, body))
        rows.append(
            Example(
                id=f"{family.group}#{len(rows):03d}",
                group=family.group,
                split=HELDOUT if heldout else TRAIN,
                kind=kind,
                lang=lang,
                title=title,
                body=body,
                category=category,
                price=price,
                currency=currency,
                labels=family.labels,
            )
        )
    return rows


def generate(families: tuple[Family, ...] = FAMILIES) -> list[Example]:
    """The whole dataset, family by family in template order."""
    groups = [family.group for family in families]
    duplicated = [group for group, count in Counter(groups).items() if count > 1]
    if duplicated:
        raise ValueError(f"duplicate template groups: {duplicated}")
    held = heldout_groups(families)
    return [row for family in families for row in generate_family(family, family.group in held)]


def render(rows: list[Example]) -> bytes:
    """The JSONL bytes of ``rows``: what is committed."""
    return "".join(row.to_json() + "\n" for row in rows).encode("utf-8")


def main(argv: list[str] | None = None) -> None:
    """Write the dataset file and print its size per split, language and policy."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DATA_FILES[0])
    args = parser.parse_args(argv)
    rows = generate()
    data = render(rows)
    args.out.write_bytes(data)
    print(f"wrote {len(rows)} rows, {len(data) / 1e6:.2f} MB to {args.out}")
    counts: Counter[tuple[str, str, str]] = Counter()
    for row in rows:
        for label in row.labels or ("clean",):
            counts[row.split, row.lang, label] += 1
    for label in (*POLICIES, "clean"):
        cells = [
            f"{split}/{lang} {counts[split, lang, label]:5d}" for split in (TRAIN, HELDOUT) for lang in ("ja", "en")
        ]
        print(f"  {label:20s} " + "  ".join(cells))


if __name__ == "__main__":
    main()
