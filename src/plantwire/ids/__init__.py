"""Identifier resolution: Handle-compatible names, records, stores, nodes and resolvers."""
