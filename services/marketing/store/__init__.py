"""How marketing keeps its data (SQLAlchemy Core, SQLite or PostgreSQL)."""
