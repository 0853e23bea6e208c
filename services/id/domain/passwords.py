"""Password hashing with argon2id, always off the event loop (it is slow on purpose)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from argon2 import PasswordHasher as _Argon2
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


@dataclass(frozen=True)
class Argon2Params:
    """argon2id cost parameters (RFC 9106 second recommendation by default)."""

    time_cost: int = 3
    """Iterations."""
    memory_cost: int = 65536
    """Memory in KiB."""
    parallelism: int = 4
    """Lanes."""


class PasswordHasher:
    """Hashes and verifies passwords in a worker thread."""

    def __init__(self, params: Argon2Params) -> None:
        self._hasher = _Argon2(
            time_cost=params.time_cost,
            memory_cost=params.memory_cost,
            parallelism=params.parallelism,
            type=Type.ID,
        )
        # Verified against when the e-mail is unknown, so a wrong address costs as much
        # time as a wrong password and response times do not reveal who has an account.
        self._decoy = self._hasher.hash("furima-decoy-password")

    async def hash(self, password: str) -> str:
        """Return the argon2id PHC string of ``password``."""
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches; with no hash, spend the same time and say no."""
        target = password_hash if password_hash is not None else self._decoy
        try:
            ok = await asyncio.to_thread(self._hasher.verify, target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return bool(ok) and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with other parameters than the configured ones."""
        return self._hasher.check_needs_rehash(password_hash)
