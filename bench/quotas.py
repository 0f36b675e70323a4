"""AWS's (and Firebase's) quotas that size a cell or the whole deployment, as data.

Each quota says where it was read and when (`read`), or that it is an ASSUMPTION; the
same table, with the same words, is in docs/scale.md ("The quotas"). A cell is one
account and region (docs/scale.md), so every per-account, per-region quota is a cell's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

READ_ON = "2026-12-05"
DOCS = "https://docs.aws.amazon.com"


class Scope(StrEnum):
    CELL = "per cell (account and region)"
    DEPLOYMENT = "per deployment"


@dataclass(frozen=True)
class Quota:
    """One quota, as documented."""

    key: str  # the demand it limits (a field of scale_model.Demand)
    name: str
    default: float
    adjustable: bool
    # What we plan on after an increase: an ASSUMPTION (AWS grants increases case by
    # case); None when it cannot be raised.
    raised: float | None
    scope: Scope
    source: str  # the page's title, and where on it
    url: str
    # How we know: "read <date>" in the stored copy of the page, or "ASSUMPTION: why".
    read: str

    def limit(self, raised: bool) -> float:
        return self.raised if raised and self.raised is not None else self.default


APIGW_QUOTAS = f"{DOCS}/apigateway/latest/developerguide/limits.html"
WEBSOCKET_QUOTAS = (
    f"{DOCS}/apigateway/latest/developerguide/"
    "apigateway-execution-service-websocket-limits-table.html"
)
LAMBDA_CONCURRENCY = f"{DOCS}/lambda/latest/dg/lambda-concurrency.html"
LAMBDA_SCALING = f"{DOCS}/lambda/latest/dg/scaling-behavior.html"
DYNAMODB_QUOTAS = f"{DOCS}/amazondynamodb/latest/developerguide/ServiceQuotas.html"
DYNAMODB_ON_DEMAND_MAX = (
    f"{DOCS}/amazondynamodb/latest/developerguide/on-demand-capacity-mode-max-throughput.html"
)
DYNAMODB_PARTITIONS = f"{DOCS}/amazondynamodb/latest/developerguide/bp-partition-key-design.html"
SNS_QUOTAS = f"{DOCS}/general/latest/gr/sns.html"
FCM_QUOTAS = "https://firebase.google.com/docs/cloud-messaging/throttling-and-quotas"
CLOUDFRONT_QUOTAS = f"{DOCS}/AmazonCloudFront/latest/DeveloperGuide/cloudfront-limits.html"

READ = f"read {READ_ON}"

# Sized for: each cell must keep its demand under TARGET_UTILIZATION of each CELL quota.
CELL_QUOTAS = (
    Quota(
        "api_requests",
        "API Gateway requests/s (frames and handshakes in + @connections posts)",
        10_000,
        True,
        50_000,
        Scope.CELL,
        "Amazon API Gateway quotas: throttle quota per account, per Region across HTTP, "
        "REST, WebSocket and WebSocket callback APIs (2,500/s in 13 newer Regions; the "
        "burst is set by AWS, not adjustable)",
        APIGW_QUOTAS,
        READ,
    ),
    Quota(
        "new_connections",
        "API Gateway new WebSocket connections/s",
        500,
        True,
        5_000,
        Scope.CELL,
        "Quotas for configuring and running a WebSocket API in API Gateway: new "
        "connections per second per account (across all WebSocket APIs) per Region",
        WEBSOCKET_QUOTAS,
        READ,
    ),
    Quota(
        "lambda_concurrency",
        "Lambda concurrent executions (max of invocations/10 and duration-based)",
        1_000,
        True,
        20_000,
        Scope.CELL,
        "Understanding Lambda function scaling: 1,000 concurrent executions per Region "
        "by default; the requests-per-second limit is 10 times the concurrency (each "
        "execution environment serves at most 10 requests a second)",
        LAMBDA_CONCURRENCY,
        f"{READ} (the 1,000; the 10-per-environment rule as quoted from this page by "
        "third-party summaries: the stored copy stops before that section)",
    ),
    Quota(
        "dynamodb_wru",
        "DynamoDB on-demand WRU/s, busiest table",
        40_000,
        True,
        80_000,
        Scope.CELL,
        "Quotas in Amazon DynamoDB, Read/write throughput: 40,000 read and 40,000 write "
        "request units per on-demand table; the account-level quotas apply to "
        "provisioned tables only",
        DYNAMODB_QUOTAS,
        READ,
    ),
    Quota(
        "dynamodb_rru",
        "DynamoDB on-demand RRU/s, busiest table",
        40_000,
        True,
        80_000,
        Scope.CELL,
        "Quotas in Amazon DynamoDB, Read/write throughput (as above)",
        DYNAMODB_QUOTAS,
        READ,
    ),
    Quota(
        "sns_publish",
        "SNS Publish to mobile endpoints/s",
        9_000,
        True,
        30_000,
        Scope.CELL,
        "Amazon Simple Notification Service endpoints and quotas: Publish API rate per "
        "account and Region (30,000/s in us-east-1, 9,000/s in us-west-2 and eu-west-1, "
        "1,500/s elsewhere)",
        SNS_QUOTAS,
        "ASSUMPTION: the figures most often quoted for this page; its stored copy shows "
        "the endpoints but not the quota table, so they are not confirmed",
    ),
)

# Shared by every cell: the deployment has one of each, so more cells do not help.
DEPLOYMENT_QUOTAS = (
    Quota(
        "fcm_messages",
        "FCM messages/s per Firebase project (Android pushes)",
        600_000 / 60,
        True,
        None,
        Scope.DEPLOYMENT,
        "FCM throttling and quotas: downstream messages, 600,000 per minute per "
        "project by default (counts messages, not requests)",
        FCM_QUOTAS,
        READ,
    ),
    Quota(
        "directory_requests",
        "CloudFront requests/s per distribution (the directory)",
        250_000,
        True,
        None,
        Scope.DEPLOYMENT,
        "Amazon CloudFront quotas, General quotas: requests per second per distribution",
        CLOUDFRONT_QUOTAS,
        READ,
    ),
    Quota(
        "directory_gbps",
        "CloudFront data transfer rate per distribution (the directory), Gbps",
        150,
        True,
        None,
        Scope.DEPLOYMENT,
        "Amazon CloudFront quotas, General quotas: data transfer rate per distribution",
        CLOUDFRONT_QUOTAS,
        READ,
    ),
)

# Limits that bound something other than a steady load: printed, not sized for.
OTHER_LIMITS = (
    (
        "Lambda scaling: 1,000 more execution environments per function every 10 s, "
        "refilled continuously, not accumulated (Lambda scaling behavior): how fast a "
        f"cold cell (a standby after a failover) ramps, not what it carries; {READ}",
        LAMBDA_SCALING,
    ),
    (
        "DynamoDB per partition: 3,000 RCU and 1,000 WCU per second, not adjustable (Best "
        "practices for designing and using partition keys effectively): per key, so per "
        "device queue here, never per cell (the hot-recipient issue's concern)",
        DYNAMODB_PARTITIONS,
    ),
    (
        "API Gateway WebSocket: connection duration 2 h, idle timeout 10 min, frame "
        f"32 KB, message 128 KB (none adjustable): why clients renew and ping; {READ}",
        WEBSOCKET_QUOTAS,
    ),
    (
        "APNs: no rate quota was checked for this bench (none found in the stored "
        "documentation); iOS pushes go through SNS's Publish rate above",
        "https://developer.apple.com/documentation/usernotifications",
    ),
)
