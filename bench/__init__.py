"""Benchmarks: each prints its figures next to a baseline measured in the same run.

Run one with `./dev bench NAME` (NAME: calls, cost, catchup, coldstart, latency, load, scale) or all
of them with `./dev bench`.

They share one protocol client (bench.protocol_client), start the local stack as
bench.local_stack does, and drive the handlers on moto through messenger_local.harness;
nothing here imports the tests.
"""
