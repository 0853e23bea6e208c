"""The rule set in force, swapped atomically when its file changes.

Rules are data: the file is parsed and validated in full before it replaces the rules
in force, so a broken edit changes nothing (the reload is refused with every problem).
A watcher notices edits without a restart; ``ReloadRules`` does it on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog

from libs.clock import Clock
from libs.errors import InvalidArgument
from services.tns.domain.content import TextClassifier
from services.tns.domain.rules import RuleSet, parse_ruleset

log = structlog.get_logger("furima.tns.rules")


@dataclass(frozen=True)
class Engine:
    """One consistent pair of rules and model; a decision uses exactly one."""

    rules: RuleSet
    model: TextClassifier
    loaded_at: datetime


class RuleBook:
    """Holds the `Engine` in force and reloads its rules from ``path``."""

    def __init__(self, path: Path, model: TextClassifier, clock: Clock) -> None:
        self.path = path
        self._clock = clock
        self._listeners: list[Callable[[Engine, Engine], None]] = []
        text = path.read_text(encoding="utf-8")
        self._engine = Engine(parse_ruleset(text, source=str(path)), model, clock.now())
        self._task: asyncio.Task[None] | None = None

    @property
    def current(self) -> Engine:
        """The engine in force."""
        return self._engine

    def on_change(self, listener: Callable[[Engine, Engine], None]) -> None:
        """Call ``listener(old, new)`` after each successful reload that changed the rules."""
        self._listeners.append(listener)

    def reload(self) -> bool:
        """Re-read the file; True when the rules changed. An invalid file raises
        `InvalidArgument` (every problem a field violation) and changes nothing.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidArgument(
                f"cannot read the rule file {self.path}: {exc.strerror}", reason="RULES_UNREADABLE"
            ) from exc
        if hashlib.sha256(text.encode()).hexdigest() == self._engine.rules.digest:
            return False
        old = self._engine
        new = Engine(parse_ruleset(text, source=str(self.path)), old.model, self._clock.now())
        self._engine = new
        log.info("rules reloaded", version=new.rules.version, digest=new.rules.digest[:12])
        for listener in self._listeners:
            listener(old, new)
        return True

    async def _watch(self, interval: float) -> None:
        last = self._mtime()
        while True:
            await asyncio.sleep(interval)
            mtime = self._mtime()
            if mtime == last:
                continue
            last = mtime
            try:
                self.reload()
            except InvalidArgument as exc:
                log.error(
                    "rule file invalid; keeping the rules in force",
                    path=str(self.path),
                    problems=[f"{v.field}: {v.description}" for v in getattr(exc, "violations", [])] or [exc.message],
                )

    def _mtime(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0

    def watch(self, interval: float) -> None:
        """Poll the file every ``interval`` seconds and reload it when it changes."""
        if interval > 0:
            self._task = asyncio.create_task(self._watch(interval), name="tns-rules-watch")

    async def stop(self) -> None:
        """Stop watching."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
