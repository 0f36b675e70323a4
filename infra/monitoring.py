"""The dashboard and the alarms: ongoing sessions, message delivery, queue health.

The functions publish their own counters as EMF (functions/messenger/observability.py):
namespace `contract.METRICS_NAMESPACE`, dimension `service` = `contract.SERVICE_NAME`.
The AWS services add theirs (AWS/Lambda, AWS/ApiGateway, AWS/DynamoDB).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import ArnFormat, Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from messenger.contract import METRICS_NAMESPACE, SERVICE_NAME, Metric, refused_metric

PERIOD = Duration.minutes(5)
CLOUDWATCH_PRINCIPAL = "cloudwatch.amazonaws.com"

# Counters the functions publish, named in the contract.
CONNECTIONS_OPENED = Metric.CONNECTIONS_OPENED
CONNECTIONS_CLOSED = Metric.CONNECTIONS_CLOSED
STALE_CONNECTIONS_REMOVED = Metric.STALE_CONNECTIONS_REMOVED
MESSAGES_STORED = Metric.MESSAGES_STORED
MESSAGES_DELIVERED_LIVE = Metric.MESSAGES_DELIVERED_LIVE
MESSAGES_LEFT_QUEUED = Metric.MESSAGES_LEFT_QUEUED
DUPLICATE_SENDS = Metric.DUPLICATE_SENDS
RECEIPTS_QUEUED = Metric.RECEIPTS_QUEUED
RECEIPTS_DELIVERED_LIVE = Metric.RECEIPTS_DELIVERED_LIVE
ITEMS_SYNCED = Metric.ITEMS_SYNCED
PUSHES_SENT = Metric.PUSHES_SENT
PUSHES_FAILED = Metric.PUSHES_FAILED
PUSHES_COLLAPSED = Metric.PUSHES_COLLAPSED
ENDPOINTS_DISABLED = Metric.ENDPOINTS_DISABLED
# Refusals are counted as "Refused" + the error code in CamelCase (handlers/_runtime.py).
REFUSED_INTERNAL = refused_metric("INTERNAL")
REFUSED_RATE_LIMITED = refused_metric("RATE_LIMITED")
REFUSED_CONNECT_DENIED = refused_metric("CONNECT_DENIED")

APP_METRICS = (
    CONNECTIONS_OPENED,
    CONNECTIONS_CLOSED,
    STALE_CONNECTIONS_REMOVED,
    MESSAGES_STORED,
    MESSAGES_DELIVERED_LIVE,
    MESSAGES_LEFT_QUEUED,
    DUPLICATE_SENDS,
    RECEIPTS_QUEUED,
    RECEIPTS_DELIVERED_LIVE,
    ITEMS_SYNCED,
    PUSHES_SENT,
    PUSHES_FAILED,
    PUSHES_COLLAPSED,
    ENDPOINTS_DISABLED,
    REFUSED_INTERNAL,
    REFUSED_RATE_LIMITED,
    REFUSED_CONNECT_DENIED,
)

# Alarm thresholds, per 5 minutes. A Lambda error or throttle is always news: handlers
# answer every failure they catch with an INTERNAL frame, so what Lambda counts as an
# error is a timeout, an out-of-memory or a broken deployment.
INTERNAL_ERRORS_THRESHOLD = 5
PUSH_FAILURES_THRESHOLD = 10
API_SERVER_ERRORS_THRESHOLD = 5


def app_metric(name: str, statistic: str = cw.Stats.SUM) -> cw.Metric:
    return cw.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": SERVICE_NAME},
        statistic=statistic,
        period=PERIOD,
        label=name,
    )


def alarm_topic(scope: Construct, removal_policy: RemovalPolicy, email: str | None) -> sns.Topic:
    """The topic a stack's alarms notify (`AlarmTopic` in `scope`), subscribed by `email`."""
    # Encrypted at rest like everything else. The AWS-managed SNS key cannot be used:
    # its policy does not let CloudWatch publish, so the topic gets its own key.
    key = kms.Key(
        scope,
        "AlarmTopicKey",
        description="Encrypts the messenger's alarm notifications",
        enable_key_rotation=True,
        removal_policy=removal_policy,
    )
    key.grant(iam.ServicePrincipal(CLOUDWATCH_PRINCIPAL), "kms:Decrypt", "kms:GenerateDataKey*")
    topic = sns.Topic(
        scope, "AlarmTopic", master_key=key, enforce_ssl=True, display_name="Messenger alarms"
    )
    # The topic policy that `enforce_ssl` creates replaces the topic's default policy,
    # and SnsAction grants nothing: without this, every alarm action fails with
    # "... is not authorized to perform: SNS:Publish". Only alarms of this account
    # and region may publish (AWS Knowledge Center,
    # https://repost.aws/knowledge-center/cloudwatch-receive-sns-for-alarm-trigger).
    stack = Stack.of(scope)
    topic.add_to_resource_policy(
        iam.PolicyStatement(
            sid="AllowThisAccountsAlarms",
            principals=[iam.ServicePrincipal(CLOUDWATCH_PRINCIPAL)],
            actions=["sns:Publish"],
            resources=[topic.topic_arn],
            conditions={
                "ArnLike": {
                    "aws:SourceArn": stack.format_arn(
                        service="cloudwatch",
                        resource="alarm",
                        resource_name="*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                },
                "StringEquals": {"aws:SourceAccount": stack.account},
            },
        )
    )
    if email:
        topic.add_subscription(subscriptions.EmailSubscription(email))
    return topic


def notifying_alarm(
    scope: Construct,
    construct_id: str,
    topic: sns.ITopic,
    metric: cw.IMetric,
    threshold: float,
    description: str,
) -> cw.Alarm:
    """An alarm on one 5-minute period at or above `threshold`; `topic` hears both ways."""
    alarm = cw.Alarm(
        scope,
        construct_id,
        metric=metric,
        threshold=threshold,
        evaluation_periods=1,
        comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        alarm_description=description,
    )
    action = cw_actions.SnsAction(topic)
    alarm.add_alarm_action(action)
    alarm.add_ok_action(action)
    return alarm


def function_alarms(
    scope: Construct, name: str, function: lambda_.IFunction, topic: sns.ITopic
) -> list[cw.Alarm]:
    """`<name>Errors` and `<name>Throttles`: any error or throttle of the function."""
    return [
        notifying_alarm(
            scope,
            f"{name}Errors",
            topic,
            function.metric_errors(period=PERIOD),
            1,
            f"{name}: Lambda counted errors (timeouts, crashes, init failures)",
        ),
        notifying_alarm(
            scope,
            f"{name}Throttles",
            topic,
            function.metric_throttles(period=PERIOD),
            1,
            f"{name}: invocations throttled (concurrency limit reached)",
        ),
    ]


def execution_alarm(
    scope: Construct,
    construct_id: str,
    machine: sfn.IStateMachine,
    topic: sns.ITopic,
    description: str,
    executions: str = "Executions",
) -> cw.Alarm:
    """An alarm on any execution of `machine` that ended badly (failed, timed out or
    aborted) in a 5-minute period; `topic` hears both ways. `executions`: what the
    graph calls them."""
    ended_badly = cw.MathExpression(
        expression="failed + timedOut + aborted",
        using_metrics={
            "failed": machine.metric_failed(period=PERIOD),
            "timedOut": machine.metric_timed_out(period=PERIOD),
            "aborted": machine.metric_aborted(period=PERIOD),
        },
        period=PERIOD,
        label=f"{executions} failed, timed out or aborted",
    )
    return notifying_alarm(scope, construct_id, topic, ended_badly, 1, description)


class Monitoring(Construct):
    """Dashboard, alarms and the topic the alarms notify."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env: str,
        api: apigwv2.WebSocketApi,
        stage: apigwv2.WebSocketStage,
        functions: Mapping[str, lambda_.Function],
        tables: Mapping[str, dynamodb.ITableV2],
        removal_policy: RemovalPolicy,
        alarm_email: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self._api_dimensions = {"ApiId": api.api_id, "Stage": stage.stage_name}
        self.topic = alarm_topic(self, removal_policy, alarm_email)
        self.alarms = self._alarms(functions, tables)
        self.dashboard = cw.Dashboard(self, "Dashboard", default_interval=Duration.hours(3))
        self._widgets(env, functions, tables)

    # --- alarms ---------------------------------------------------------------------

    def _alarm(
        self, construct_id: str, metric: cw.IMetric, threshold: float, description: str
    ) -> cw.Alarm:
        return notifying_alarm(self, construct_id, self.topic, metric, threshold, description)

    def _alarms(
        self, functions: Mapping[str, lambda_.Function], tables: Mapping[str, dynamodb.ITableV2]
    ) -> list[cw.Alarm]:
        alarms = []
        for name, function in functions.items():
            alarms += function_alarms(self, name, function, self.topic)
        alarms.append(
            self._alarm(
                "InternalErrors",
                app_metric(REFUSED_INTERNAL),
                INTERNAL_ERRORS_THRESHOLD,
                "Frames answered INTERNAL: a handler caught an unexpected failure",
            )
        )
        alarms.append(
            self._alarm(
                "PushFailures",
                app_metric(PUSHES_FAILED),
                PUSH_FAILURES_THRESHOLD,
                "Mobile pushes that did not go out (SNS errors, time budget spent)",
            )
        )
        alarms.append(
            self._alarm(
                "ApiServerErrors",
                self._api_server_errors(),
                API_SERVER_ERRORS_THRESHOLD,
                "API Gateway could not deliver frames to the functions or run them",
            )
        )
        for name, table in tables.items():
            alarms.append(
                self._alarm(
                    f"{name}TableThrottles",
                    self._table_throttles(name, table),
                    1,
                    f"DynamoDB throttled requests on the {name} table",
                )
            )
        return alarms

    # --- metrics --------------------------------------------------------------------

    def _api_metric(
        self, name: str, statistic: str = cw.Stats.SUM, label: str | None = None
    ) -> cw.Metric:
        return cw.Metric(
            namespace="AWS/ApiGateway",
            metric_name=name,
            dimensions_map=self._api_dimensions,
            statistic=statistic,
            period=PERIOD,
            label=label or name,
        )

    def _api_server_errors(self) -> cw.IMetric:
        # WebSocket APIs have no 5XX metric: these two are its server-side failures.
        return cw.MathExpression(
            expression="FILL(integration, 0) + FILL(execution, 0)",
            using_metrics={
                "integration": self._api_metric("IntegrationError"),
                "execution": self._api_metric("ExecutionError"),
            },
            label="5xx (IntegrationError + ExecutionError)",
            period=PERIOD,
        )

    @staticmethod
    def _table_throttles(name: str, table: dynamodb.ITableV2) -> cw.IMetric:
        def events(metric_name: str) -> cw.Metric:
            return cw.Metric(
                namespace="AWS/DynamoDB",
                metric_name=metric_name,
                dimensions_map={"TableName": table.table_name},
                statistic=cw.Stats.SUM,
                period=PERIOD,
            )

        # Ids are unique per graph, and this graph shows every table.
        reads, writes = f"{name.lower()}Reads", f"{name.lower()}Writes"
        return cw.MathExpression(
            expression=f"FILL({reads}, 0) + FILL({writes}, 0)",
            using_metrics={
                reads: events("ReadThrottleEvents"),
                writes: events("WriteThrottleEvents"),
            },
            label=f"{name} table",
            period=PERIOD,
        )

    # --- dashboard ------------------------------------------------------------------

    def _graph(self, title: str, left: Sequence[cw.IMetric], width: int = 8) -> cw.GraphWidget:
        return cw.GraphWidget(title=title, left=list(left), width=width, height=6)

    def _widgets(
        self,
        env: str,
        functions: Mapping[str, lambda_.Function],
        tables: Mapping[str, dynamodb.ITableV2],
    ) -> None:
        live = cw.MathExpression(
            # Net connections opened since the left edge of the graph: a gauge would need
            # a counter the functions do not keep, and this one costs nothing.
            expression="RUNNING_SUM(FILL(opened, 0) - FILL(closed, 0))",
            using_metrics={
                "opened": app_metric(CONNECTIONS_OPENED),
                "closed": app_metric(CONNECTIONS_CLOSED),
            },
            label="Live connections (net, over the graph's range)",
            period=PERIOD,
        )
        per_function = list(functions.items())
        board = self.dashboard
        board.add_widgets(
            cw.TextWidget(
                markdown=f"# Messenger ({env}) in {Aws.REGION}\n"
                "Sessions, message delivery and queue health; alarms on the right.",
                width=24,
                height=2,
            )
        )
        board.add_widgets(
            self._graph("Sessions: live connections", [live]),
            self._graph(
                "Sessions: opened / closed",
                [
                    app_metric(CONNECTIONS_OPENED),
                    app_metric(CONNECTIONS_CLOSED),
                    app_metric(STALE_CONNECTIONS_REMOVED),
                    app_metric(REFUSED_CONNECT_DENIED),
                ],
            ),
            cw.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms), width=8, height=6),
        )
        board.add_widgets(
            self._graph(
                "Delivery: messages",
                [
                    app_metric(MESSAGES_STORED),
                    app_metric(MESSAGES_DELIVERED_LIVE),
                    app_metric(MESSAGES_LEFT_QUEUED),
                    app_metric(DUPLICATE_SENDS),
                ],
            ),
            self._graph(
                "Delivery: receipts",
                [
                    app_metric(RECEIPTS_QUEUED),
                    app_metric(RECEIPTS_DELIVERED_LIVE),
                ],
            ),
            self._graph(
                "Delivery: mobile push",
                [
                    app_metric(PUSHES_SENT),
                    app_metric(PUSHES_FAILED),
                    app_metric(PUSHES_COLLAPSED),
                    app_metric(ENDPOINTS_DISABLED),
                ],
            ),
        )
        board.add_widgets(
            self._graph(
                "Queue health: left queued vs synced",
                [
                    app_metric(MESSAGES_LEFT_QUEUED),
                    app_metric(ITEMS_SYNCED),
                ],
            ),
            self._graph(
                "Queue health: DynamoDB throttles",
                [self._table_throttles(name, table) for name, table in tables.items()],
            ),
            self._graph(
                "Refusals",
                [
                    app_metric(REFUSED_INTERNAL),
                    app_metric(REFUSED_RATE_LIMITED),
                ],
            ),
        )
        board.add_widgets(
            self._graph(
                "Lambda errors",
                [fn.metric_errors(period=PERIOD, label=name) for name, fn in per_function],
            ),
            self._graph(
                "Lambda throttles",
                [fn.metric_throttles(period=PERIOD, label=name) for name, fn in per_function],
            ),
            self._graph(
                "Lambda duration p99 (ms)",
                [
                    fn.metric_duration(period=PERIOD, statistic="p99", label=name)
                    for name, fn in per_function
                ],
            ),
        )
        board.add_widgets(
            self._graph(
                "API Gateway: frames and connects",
                [
                    self._api_metric("MessageCount"),
                    self._api_metric("ConnectCount"),
                ],
            ),
            self._graph(
                "API Gateway: 4xx / 5xx",
                [
                    self._api_metric("ClientError", label="4xx (ClientError)"),
                    self._api_server_errors(),
                ],
            ),
            self._graph(
                "API Gateway: integration latency (ms)",
                [
                    self._api_metric("IntegrationLatency", "p50", "p50"),
                    self._api_metric("IntegrationLatency", "p99", "p99"),
                ],
            ),
        )
