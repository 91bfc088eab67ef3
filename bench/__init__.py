"""Benchmarks: run as scripts (python bench/NAME.py); results are recorded in README.md."""
