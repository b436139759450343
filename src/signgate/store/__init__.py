"""Persistence: SQLAlchemy models, the database handle and Alembic migrations.

Only ``service/`` and ``audit/`` use this package.
"""
