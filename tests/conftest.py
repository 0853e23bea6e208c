"""Fixtures of the cross-service suites."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.stack import EchoService, Stack, running_echo, running_stack


@pytest.fixture
async def stack(database_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    """The ID service, bootstrapped, on SQLite (and PostgreSQL when configured)."""
    async with running_stack(database_url, tmp_path) as running:
        yield running


@pytest.fixture
async def echo(stack: Stack) -> AsyncIterator[EchoService]:
    """A second service built from libs/, trusting the stack's ID service."""
    async with running_echo(stack) as service:
        yield service
