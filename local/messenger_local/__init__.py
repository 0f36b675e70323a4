"""The local stack: an API Gateway WebSocket emulator running the real functions on moto."""
