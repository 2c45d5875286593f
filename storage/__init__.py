"""Persistence behind one documented interface (``Store``), on SQLite or PostgreSQL."""
