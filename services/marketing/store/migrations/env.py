"""Alembic environment of the marketing service: migrate on the connection libs.storage hands over."""

from libs.storage import run_migrations_online
from services.marketing.store.schema import metadata

run_migrations_online(metadata)
