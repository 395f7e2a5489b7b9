"""Benchmarks: timing and memory records with ratios against a baseline measured in the same run.

Speed is measured here, never asserted in tests. Each variant runs in its own process so that its
peak memory is its own.
"""
