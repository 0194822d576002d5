"""Benchmark: the seed's configuration as-is against this loader, on the local API simulator.

`make bench` / `python -m bench` (see `bench.cli` for the scenarios and flags). Results go to
docs/benchmarks.md and the README's bench section; raw figures to bench/out/.
"""
