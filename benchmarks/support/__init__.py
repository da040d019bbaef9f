"""Helpers of the deployment benchmarks: a real platform (`berth up`), its REST API, its events, plain HTTP."""
