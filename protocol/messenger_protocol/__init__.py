"""The wire protocol of the messenger (docs/protocol.md), shared by every part of the project.

The Lambda functions, the local emulator, the client SDK and CLI, the tests and the
benchmarks all import it; docs/asyncapi.yaml is generated from it
(`python -m messenger_protocol.asyncapi`), and so are the JavaScript SDK's limits and
client rules (`python -m messenger_protocol.javascript`). Pure Python: no AWS, cheap to
import, bundled into the Lambda asset. libsodium is loaded only by the functions that sign
or verify.
"""
