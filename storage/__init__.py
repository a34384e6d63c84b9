"""Persistence: the relational database (SQLAlchemy + Alembic) and shared state (Redis or in-process)."""
