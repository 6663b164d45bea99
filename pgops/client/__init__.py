"""Clients of a database: connection targets, the connection layer, the health probe, dumps."""
