"""Benchmarks: the `carepath bench` harness (bench.harness) and the single-purpose scripts beside it."""
