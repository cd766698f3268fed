"""Persistence for newswatch: models, engine, migrations and one module per aggregate."""
