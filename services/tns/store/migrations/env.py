"""Alembic environment of the TnS service: migrate on the connection libs.storage hands over."""

from libs.storage import run_migrations_online
from services.tns.store.tables import metadata

run_migrations_online(metadata)
