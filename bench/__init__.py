"""Benchmarks: each prints its figures; ``make bench`` runs them all (bench/__main__.py)."""
