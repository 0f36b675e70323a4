"""The regions the stack supports, and what each one offers: one list, checked at synth.

Every region here is a commercial AWS region (partition `aws`) with API Gateway WebSocket
APIs, Lambda on arm64 and DynamoDB; `tests/infra/test_regions.py` runs cfn-lint on the
synthesized templates for every one of them. Sources, as read on 2026-11-30:

- SnapStart: "Lambda SnapStart is available in all commercial Regions except Asia Pacific
  (New Zealand) and Asia Pacific (Taipei)".
  https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html#snapstart-supported-regions
- SNS mobile push ("you can create mobile applications in the following Regions").
  https://docs.aws.amazon.com/sns/latest/dg/sns-mobile-push-supported-regions.html
- API Gateway's throttle quota per account and region, "across HTTP APIs, REST APIs,
  WebSocket APIs, and WebSocket callback APIs": 10,000 requests/s with a burst of 5,000,
  except 2,500 and 1,250 in 13 regions. https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class AccountQuota:
    """API Gateway's default throttle for one account in one region (requests/s, burst)."""

    rate: int
    burst: int


# Every supported region's partition: a cell names its peers' ARNs with it at synth time.
PARTITION = "aws"
# ...and its domain: the web app names the cells' API endpoints with it at synth time.
URL_SUFFIX = "amazonaws.com"
DEFAULT_QUOTA = AccountQuota(rate=10_000, burst=5_000)
SMALL_QUOTA = AccountQuota(rate=2_500, burst=1_250)


@dataclass(frozen=True)
class RegionKind:
    """What matters to the stack about a region."""

    snap_start: bool
    mobile_push: bool
    quota: AccountQuota


SUPPORTED_REGIONS = (
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-1",
    "ap-south-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
)
# Asia Pacific (Taipei), Asia Pacific (New Zealand).
WITHOUT_SNAPSTART = frozenset({"ap-east-2", "ap-southeast-6"})
# Regions where SnapStart is offered (the Lambda documentation, cfn-lint's E2530 agree)
# but which the CloudFormation validator bundled with aws-cdk-lib 2.275
# (`@aws-cdk/core:validateAgainstDefaultRules`) still refuses with E2530: its region table
# is older. The stack acknowledges that finding in these regions only.
SNAPSTART_UNKNOWN_TO_CDK_VALIDATOR = frozenset(
    {
        "ap-south-2",
        "ap-southeast-4",
        "ap-southeast-5",
        "ap-southeast-7",
        "ca-west-1",
        "eu-central-2",
        "eu-south-2",
        "il-central-1",
        "me-central-1",
        "mx-central-1",
    }
)
WITH_MOBILE_PUSH = frozenset(
    {
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        "af-south-1",
        "ap-east-1",
        "ap-southeast-3",
        "ap-south-1",
        "ap-northeast-3",
        "ap-northeast-2",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-northeast-1",
        "ca-central-1",
        "eu-central-1",
        "eu-west-1",
        "eu-west-2",
        "eu-south-1",
        "eu-south-2",
        "eu-west-3",
        "eu-north-1",
        "me-south-1",
        "me-central-1",
        "sa-east-1",
    }
)
# Cape Town, Milan, Jakarta, UAE, Hyderabad, Melbourne, Spain, Zurich, Tel Aviv, Calgary,
# Malaysia, Thailand, Mexico (Central).
WITH_SMALL_QUOTA = frozenset(
    {
        "af-south-1",
        "eu-south-1",
        "ap-southeast-3",
        "me-central-1",
        "ap-south-2",
        "ap-southeast-4",
        "eu-south-2",
        "eu-central-2",
        "il-central-1",
        "ca-west-1",
        "ap-southeast-5",
        "ap-southeast-7",
        "mx-central-1",
    }
)


def region_kind(region: str) -> RegionKind:
    """What `region` offers; refuses a region the stack does not support."""
    if region not in SUPPORTED_REGIONS:
        raise ValueError(
            f"region {region!r} is not one the stack supports (infra/regions.py): "
            f"{', '.join(SUPPORTED_REGIONS)}"
        )
    return RegionKind(
        snap_start=region not in WITHOUT_SNAPSTART,
        mobile_push=region in WITH_MOBILE_PUSH,
        quota=SMALL_QUOTA if region in WITH_SMALL_QUOTA else DEFAULT_QUOTA,
    )


def region_kinds() -> dict[RegionKind, tuple[str, ...]]:
    """The supported regions grouped by kind (templates of one kind differ in names only)."""
    kinds: dict[RegionKind, list[str]] = {}
    for region in SUPPORTED_REGIONS:
        kinds.setdefault(region_kind(region), []).append(region)
    return {kind: tuple(regions) for kind, regions in kinds.items()}


def check_snap_start(region: str, snap_start: bool) -> None:
    """Refuse SnapStart where Lambda does not offer it (CloudFormation would fail)."""
    if snap_start and not region_kind(region).snap_start:
        raise ValueError(
            f"Lambda SnapStart is not offered in {region}: deploy there with "
            "-c snapStart=false, or choose another region"
        )


def check_push_apps(region: str, push_apps: Mapping[str, str]) -> None:
    """Refuse push platform applications SNS cannot use from a stack in `region`.

    `push_apps` maps a platform (APNS, APNS_SANDBOX, GCM) to its application ARN, known at
    synth time.
    """
    if not push_apps:
        return
    if not region_kind(region).mobile_push:
        raise ValueError(
            f"SNS mobile push is not offered in {region}: deploy without "
            "push:* context, or choose a region that has it"
        )
    for platform, arn in sorted(push_apps.items()):
        parts = arn.split(":", 5)
        if len(parts) != 6 or parts[2] != "sns" or not parts[5].startswith(f"app/{platform}/"):
            raise ValueError(
                f"push:{platform} is not an SNS {platform} platform application "
                f"ARN (arn:aws:sns:REGION:ACCOUNT:app/{platform}/NAME): {arn}"
            )
        if parts[3] != region:
            raise ValueError(
                f"push:{platform} is a platform application in {parts[3]}, but the stack "
                f"deploys to {region}: SNS publishes to endpoints of its own region only; "
                f"create the application in {region}"
            )
