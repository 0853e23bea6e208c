"""TnS persistence: tables, repositories and migrations (SQLAlchemy Core)."""
