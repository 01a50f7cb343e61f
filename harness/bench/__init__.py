"""Benchmarks that print figures; run them through ``harness bench``."""
