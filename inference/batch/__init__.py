"""Offline batch analysis of scan folders: ``radlens analyze``."""
