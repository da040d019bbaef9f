"""Benchmarks of Berth (``make bench``): each ``bench_*.py`` module measures one thing against its goals."""
