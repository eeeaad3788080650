"""Benchmarks: one module per pipeline with ``add_arguments(parser)`` and ``main(args) -> int``."""
