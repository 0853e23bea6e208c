"""The rule book: reloads swap rules atomically, and a bad edit changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from libs.clock import FrozenClock
from libs.errors import InvalidArgument
from services.tns.domain.classifier import load_classifier
from services.tns.service.rulebook import Engine, RuleBook

RULES = """
version = "{version}"
[lists]
drugs = ["大麻"]

[[rules]]
id = "drugs"
policy = "prohibited_item"
verdict = "BLOCK"
description = "Illegal drugs."
when = {{ keywords = "drugs" }}
"""


def test_reload_swaps_changed_rules_ignores_unchanged_and_survives_a_bad_edit(tmp_path: Path) -> None:
    """Unchanged file: no reload; changed: new version and listeners told; invalid: refused, old rules stay."""
    path = tmp_path / "rules.toml"
    path.write_text(RULES.format(version="t1"), encoding="utf-8")
    book = RuleBook(path, load_classifier(), FrozenClock())
    changes: list[tuple[str, str]] = []

    def listener(old: Engine, new: Engine) -> None:
        changes.append((old.rules.version, new.rules.version))

    book.on_change(listener)
    assert book.reload() is False
    path.write_text(RULES.format(version="t2"), encoding="utf-8")
    assert book.reload() is True
    assert book.current.rules.version == "t2"
    assert changes == [("t1", "t2")]
    path.write_text('version = "t3"\n[[rules]]\nid = "x"\n', encoding="utf-8")
    with pytest.raises(InvalidArgument) as info:
        book.reload()
    assert {v.field for v in info.value.violations} >= {"rules[0].policy", "rules[0].verdict"}
    assert book.current.rules.version == "t2"
    assert changes == [("t1", "t2")]
