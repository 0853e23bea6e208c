"""Alembic environment of the payments service: migrate on the connection libs.storage hands over."""

from libs.storage import run_migrations_online
from services.payments.store.tables import metadata

run_migrations_online(metadata)
