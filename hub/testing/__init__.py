"""Helpers that start real local peers (test broker, ...) for tests, demos and benchmarks."""
