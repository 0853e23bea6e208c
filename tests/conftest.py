"""Fixtures of the cross-service suites."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from libs.clock import FrozenClock
from libs.rpc import make_channel
from libs.storage import is_postgres
from libs.testing import postgres_admin_url, temporary_postgres_database
from services.tns.main import TnsService
from tests.stack import EchoService, Stack, running_echo, running_stack, running_tns
from tests.tns_helpers import Tns


@pytest.fixture
async def stack(database_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    """The ID service, bootstrapped, on SQLite (and PostgreSQL when configured)."""
    async with running_stack(database_url, tmp_path) as running:
        yield running


@pytest.fixture
async def still_stack(database_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    """The stack with a clock that does not move: a sign-in delay of one second never runs
    out mid-test, however slowly a loaded machine serves the calls.
    """
    async with running_stack(database_url, tmp_path, clock=FrozenClock()) as running:
        yield running


@pytest.fixture
async def echo(stack: Stack) -> AsyncIterator[EchoService]:
    """A second service built from libs/, trusting the stack's ID service."""
    async with running_echo(stack) as service:
        yield service


@pytest.fixture
async def tns_database_url(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """TnS's own empty database, on the same backend as the stack's."""
    if not is_postgres(database_url):
        yield f"sqlite+aiosqlite:///{tmp_path}/tns.db"
        return
    admin = postgres_admin_url()
    assert admin is not None  # database_url is PostgreSQL only when it is configured
    async with temporary_postgres_database(admin) as url:
        yield url


@pytest.fixture
async def tns(stack: Stack, tns_database_url: str) -> AsyncIterator[TnsService]:
    """The TnS service, trusting the stack's ID service and acting on it as ``svc-tns``."""
    async with running_tns(stack, tns_database_url) as service:
        yield service


@pytest.fixture
async def tns_api(tns: TnsService) -> AsyncIterator[Tns]:
    """Stubs of every TnS service on one channel to the running TnS."""
    async with make_channel(tns.address) as channel:
        yield Tns(channel)
