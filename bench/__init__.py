"""Benchmarks: each prints its figures next to a baseline measured in the same run.

Run one with `./dev bench NAME` (NAME: calls, cost, coldstart, latency, load) or all
of them with `./dev bench`.
"""
