"""Alembic migrations of the registry database (run by ``plantwire init`` and ``up``)."""
