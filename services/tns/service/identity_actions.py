"""Carrying out suspensions and reinstatements through the ID service.

The decision is committed first (an action with ``applied_at`` unset); a dispatcher then
calls the ID service and marks the action applied. If the ID service is down the action
waits and is retried, also after a restart, so a suspension is never lost. Calls are
idempotent at the ID service, so a retry after a lost reply does no harm.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

import structlog

from libs.errors import NotFound
from services.tns.domain.enforcement import ActionKind
from services.tns.service._runtime import Runtime
from services.tns.store import enforcement as repo

log = structlog.get_logger("furima.tns.identity")


class UserAdmin(Protocol):
    """The part of the ID service TnS drives."""

    async def suspend(self, user_id: str, reason: str) -> None:
        """Suspend the user everywhere (idempotent)."""
        ...

    async def reinstate(self, user_id: str, reason: str) -> None:
        """Lift the suspension (idempotent)."""
        ...


class IdentityActionDispatcher:
    """Applies pending suspensions and reinstatements in order, retrying failures."""

    def __init__(self, rt: Runtime, admin: UserAdmin, *, retry_interval: float = 2.0) -> None:
        self._rt = rt
        self._admin = admin
        self._retry_interval = retry_interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Look for pending actions now (called after a commit that created one)."""
        self._wake.set()

    async def run_once(self) -> int:
        """Apply what is pending, oldest first; stops at the first failure. Returns how many."""
        async with self._rt.db.read() as conn:
            pending = await repo.unapplied_identity_actions(conn)
        applied = 0
        for action in pending:
            try:
                if action.kind is ActionKind.SUSPEND:
                    await self._admin.suspend(action.user_id, action.reason or "trust and safety enforcement")
                else:
                    await self._admin.reinstate(action.user_id, action.reason or "trust and safety appeal granted")
            except NotFound:
                # The ID service does not know the user: nothing to carry out, ever.
                log.warning("identity action for unknown user", action_id=action.action_id, user_id=action.user_id)
            except Exception as exc:  # noqa: BLE001 — any failure: keep it pending and retry later
                log.warning("identity action failed; will retry", action_id=action.action_id, error=str(exc))
                return applied
            async with self._rt.db.transaction() as tx:
                await repo.mark_applied(tx.conn, action.action_id, self._rt.clock.now())
            applied += 1
        return applied

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            await self.run_once()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._retry_interval):
                    await self._wake.wait()

    def start(self) -> None:
        """Run in the background until `stop`."""
        self._task = asyncio.create_task(self._loop(), name="tns-identity-actions")

    async def stop(self) -> None:
        """Stop the background loop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
