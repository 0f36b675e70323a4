"""The cells' directory (docs/protocol.md §6) as the deployment publishes it on AWS.

`store` is the one path by which a cell's URL reaches `directory.json`: a cell writes its
entry, the directory function merges the entries with the shard map, `version` + 1.
`handlers` are its two Lambda entry points. Only boto3 (the runtime's) and
`messenger_protocol` are imported: the asset is these two packages and nothing else.
"""
