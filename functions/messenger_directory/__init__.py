"""The cells' directory (docs/protocol.md §6) as the deployment publishes it on AWS.

`store` is the one path by which a cell's URL reaches `directory.json`: a cell writes its
entry, the directory function merges the entries with the shard map, `version` + 1.
`handlers` are its two Lambda entry points, `failover` the switch of a cell to its standby
(docs/protocol.md §7) with its own two. As the messenger's functions do, they read their
configuration once (`config`), log with powertools (`observability`) and get their boto3
clients made once (`wiring`). Only boto3 (the runtime's), powertools and
`messenger_protocol` are imported, `failover` excepted (it needs `messenger` too).
"""
