"""Powertools Logger and Metrics: one of each per function container.

No tracing SDK: Lambda's active tracing (the stack sets it on every function) records
each invocation's segment (initialization, invocation, overhead) without one. The X-Ray
SDK that powertools' Tracer wraps is in maintenance since 2026-02-25, and cost every cold
start ~50 ms (docs/performance.md); docs/infra.md says what replaces it and why.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from messenger.contract import METRICS_NAMESPACE, SERVICE_NAME

logger = Logger(service=SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)


def count(name: str, value: int = 1) -> None:
    """Add to a counter of this invocation (flushed as EMF when the handler returns)."""
    if value:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def duration(name: str, seconds: float, **dimensions: str) -> None:
    """A duration with dimensions of its own besides the service's (e.g. `Step`): written at
    once, as its own EMF record, since an invocation's other metrics share one set."""
    with single_metric(
        name=name,
        unit=MetricUnit.Milliseconds,
        value=seconds * 1000,
        namespace=METRICS_NAMESPACE,
        default_dimensions={"service": SERVICE_NAME, **dimensions},
    ):
        pass
