"""Powertools Logger, Metrics and Tracer: one of each per function container."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from messenger.contract import METRICS_NAMESPACE, SERVICE_NAME

logger = Logger(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)
# Only boto3 calls get subsegments; patching every library X-Ray knows costs cold start.
tracer = Tracer(service=SERVICE_NAME, patch_modules=["boto3"])


def count(name: str, value: int = 1) -> None:
    """Add to a counter of this invocation (flushed as EMF when the handler returns)."""
    if value:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
