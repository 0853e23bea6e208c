"""Persistence of the ID service: SQLAlchemy Core tables, migrations and repositories."""
