"""Powertools Logger of the directory's functions: one per function container.

Structured JSON lines with the invocation's keys (`inject_lambda_context`), as the
messenger's functions log (functions/messenger/observability.py), under a service name of
their own.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger

SERVICE_NAME = "messenger-directory"

logger = Logger(service=SERVICE_NAME)
