"""Benchmarks of acs (run with `python -m bench.run`; see the README)."""
