"""The performance contract (SPEC §8): ``python -m benchmarks``."""
