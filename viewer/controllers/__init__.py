"""Wiring between models, views and background work."""
