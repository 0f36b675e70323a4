"""Load: many concurrent WebSocket clients exchange messages through the local stack.

`python -m bench load [--users N] [--messages M] [--churn FRACTION] [--seed S]` opens one
connection per user (all of them open at once), then sends M messages between random
pairs of users while a share of them disconnect and reconnect, and finally checks:

- zero lost: every message acknowledged to its sender was stored by its recipient;
- zero duplicated: no recipient keeps a message twice, and every redelivered copy is
  the very item first delivered (same queue id and serverTs), so the server never
  stored a message twice;
- order: each sender's messages to one recipient carry increasing serverTs, and arrive
  in that order on a connection outside a sync's catch-up;
- every message acknowledged by its recipient and answered by exactly one `delivered`
  receipt to its sender;
- the queue empty at the end (one Query per user's partition, no Scan);
- with `--seen`: every recipient marks what it reads `seen` (each `markSeen` kept until
  its `seenStored`), and every message's sender gets a `seen` receipt.

It prints messages per second and the send→receive latency (p50/p95/p99), and exits
non-zero when a check fails. The clients behave as docs/protocol.md asks of a careful client:
one message at a time per sender (the next after the previous `ack`, so the order of a
sender's messages is defined), the same frame sent again after `RATE_LIMITED` or a lost
ack, every delivered item acknowledged (a few milliseconds' worth batched into one `ack`
frame), duplicates dropped by `(from, messageId)`, and `sync` after every reconnect.

By default it runs the stack in this process, on loopback ports, with the per-sender rate
limit raised so that the test measures the stack rather than the limiter (the output says
which limit was in force). `--url` drives a `messenger local` started elsewhere instead
(start it with RATE_LIMIT_PER_MINUTE and RATE_LIMIT_BURST in its environment; give
`--aws-endpoint` and `--queue-table` from its banner to check the queue table too).
Everything is bounded: `--timeout` seconds for the whole run.

The modules, in the order a run uses them: `ledger` (the plan, and what became of each
message), `client` (one user's careful client), `run` (the users, churn, pacing,
progress and timeout; the stack it starts), `checks` (what must hold at the end),
`report` (the figures and the lines printed), `cli` (the options).
"""

from bench.load.cli import main
from bench.load.report import LoadResult
from bench.load.run import LoadConfig, run_local, run_remote

__all__ = ["LoadConfig", "LoadResult", "main", "run_local", "run_remote"]
