"""Hand-written phrase templates and slot fillers the synthetic dataset is generated from."""

from __future__ import annotations

from services.tns.ml.templates import en_clean, en_conduct, en_goods, ja_clean, ja_conduct, ja_goods
from services.tns.ml.templates.family import Family

FAMILIES: tuple[Family, ...] = (
    *ja_goods.FAMILIES,
    *ja_conduct.FAMILIES,
    *en_goods.FAMILIES,
    *en_conduct.FAMILIES,
    *ja_clean.FAMILIES,
    *en_clean.FAMILIES,
)

__all__ = ["FAMILIES", "Family"]
