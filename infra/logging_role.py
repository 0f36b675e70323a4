"""API Gateway's CloudWatch role: one per account and region, in a stack of its own.

API Gateway writes execution logs (and WebSocket access logs) through one role set in
the account's settings (`AWS::ApiGateway::Account`), per region, for every API there.
A stage that logs cannot be created before it is set ("CloudWatch Logs role ARN must be
set in account settings to enable logging"). An app stack that set it would silently
replace whatever role another stack set, and leave it behind when destroyed; so it lives
here, once per account and region, whatever number of app stacks (environments, cells)
deploy there, and every app stack there deploys after it.

    npx cdk deploy 'ApiGatewayLogging*'     # or with the app stacks: cdk deploy --all

CloudFormation: "If an API Gateway resource has never been created in your AWS account,
you must add a dependency on another API Gateway resource, such as an
AWS::ApiGateway::RestApi or AWS::ApiGateway::ApiKey resource" (else, in a fresh account:
"The role ARN does not have required permissions", aws/aws-cdk#2194); the account
settings here depend on an inert API key for that reason.
https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-apigateway-account.html
"""

from __future__ import annotations

from aws_cdk import App, Environment, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.config import Target
from infra.nag import acknowledge

# One CloudFormation stack of this name per account and region.
STACK_NAME = "ApiGatewayLogging"
API_GATEWAY_PRINCIPAL = "apigateway.amazonaws.com"
LOGS_POLICY = "service-role/AmazonAPIGatewayPushToCloudWatchLogs"


class ApiGatewayLoggingStack(Stack):
    """The role API Gateway logs through, set as the account's, in one account and region."""

    def __init__(self, scope: Construct, construct_id: str, *, target: Target) -> None:
        super().__init__(
            scope,
            construct_id,
            stack_name=STACK_NAME,
            env=Environment(account=target.account, region=target.region),
            description="API Gateway's CloudWatch Logs role for this account and region "
            "(one per region; every API here logs through it)",
            # Every API in the region logs through it: deleting it is a decision.
            termination_protection=True,
        )
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(API_GATEWAY_PRINCIPAL),
            description="API Gateway writes CloudWatch Logs through this role",
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(LOGS_POLICY)],
        )
        acknowledge(
            role,
            f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{LOGS_POLICY}]",
            "The account-wide API Gateway logging role serves every API in the "
            "region; this AWS-managed policy is the one AWS documents for it",
        )
        # Inert (disabled, in no usage plan): it only makes sure that API Gateway has a
        # resource in this region before the account settings are written.
        prerequisite = apigw.CfnApiKey(
            self,
            "AccountSettingsPrerequisite",
            enabled=False,
            description="Makes the account settings wait for an API Gateway resource "
            "(AWS::ApiGateway::Account documentation); grants nothing",
        )
        self.account_settings = apigw.CfnAccount(
            self, "Account", cloud_watch_role_arn=role.role_arn
        )
        self.account_settings.add_resource_dependency(prerequisite)


def api_gateway_logging_stack(app: App, target: Target) -> ApiGatewayLoggingStack:
    """The app's logging-role stack for `target`'s account and region, made on first use."""
    construct_id = "-".join(filter(None, (STACK_NAME, target.account, target.region)))
    existing = app.node.try_find_child(construct_id)
    if isinstance(existing, ApiGatewayLoggingStack):
        return existing
    return ApiGatewayLoggingStack(
        app, construct_id, target=Target(region=target.region, account=target.account)
    )
