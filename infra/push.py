"""The SNS platform applications a stack pushes through, as given or read from SSM."""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack, Token
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra.config import DeploymentConfig
from infra.regions import check_push_apps

# What an SSM context lookup returns before the CLI has made it (CDK's dummy value).
LOOKUP_PLACEHOLDER_PREFIX = "dummy-value-for-"


def push_applications(scope: Construct, config: DeploymentConfig) -> dict[str, str]:
    """Platform -> SNS platform application ARN, as given or read from SSM at synth.

    Looked up at synth time (and cached in cdk.context.json), not resolved by
    CloudFormation at deploy: the ARN is then part of the functions' version hash, so
    a changed parameter publishes new versions (infra/versions.py), and its region
    can be checked here.
    """
    stack = Stack.of(scope)
    apps = {}
    for platform, source in sorted(config.push_apps.items()):
        if source.startswith("/"):
            if Token.is_unresolved(stack.account):
                raise ValueError(
                    f"push:{platform} names an SSM parameter, looked up at synth time in "
                    "the target account: run the CDK CLI with credentials for it, or "
                    "pass -c account=ACCOUNT"
                )
            arn = ssm.StringParameter.value_from_lookup(scope, source)
            if arn.startswith(LOOKUP_PLACEHOLDER_PREFIX):
                # Not looked up yet: the CLI reads the app's missing context, looks it
                # up and synthesizes again. Until then a well-formed stand-in, so that
                # this first pass gets through validation to that point.
                arn = stack.format_arn(
                    service="sns",
                    resource="app",
                    resource_name=f"{platform}/{LOOKUP_PLACEHOLDER_PREFIX}{platform.lower()}",
                    arn_format=ArnFormat.SLASH_RESOURCE_NAME,
                )
            apps[platform] = arn
        else:
            apps[platform] = source
    check_push_apps(stack.region, apps)
    return apps
