"""Reproducible generators of the bundled test data in ``inputs/``."""
