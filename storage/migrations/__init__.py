"""Alembic migrations of the newswatch schema; applied by storage.migrate."""
