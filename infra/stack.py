"""The messenger on AWS: one cell (docs/protocol.md §6) in one account and region.

Everything the functions and the emulator also know (routes, handlers, the authorizer's
query parameters, tables, indexes, environment variable names, what each function may
touch) is read from `messenger.contract`; the stack's parts only decide how AWS runs it:

    Tables          the contract's tables (infra/tables.py)
    WebSocketStage  the API, its routes, authorizer, stage, throttle and logs (infra/websocket.py)
    Functions       one per route, the authorizer, the workers (infra/functions.py)
    PresenceSettle  the presence function's settle queue for flaps (infra/presence_settle.py)
    Relay           what peer cells invoke (infra/relay.py), in a deployment with a directory
    ShardMover      the runner of shard moves out of the cell (infra/mover.py), with peers
    Monitoring      the dashboard and the alarms (infra/monitoring.py)

Every deployment is cells. A deployment without a directory is one cell with no peers,
in the stack `Messenger-<env>`, serving its own web app. A cell of a deployment with a
directory has a Relay and publishes its URL in the directory (infra/cells.py,
infra/directory.py); with a standby its tables are global (a replica in the standby's
region), and its standby is this stack again, on the replicas, without a directory
entry of its own: a failover switch writes it (infra/failover.py,
infra/failover_automation.py).

The first four parts make their resources in the stack's own scope, not in a construct
of their own: CloudFormation knows a resource by its logical id, which CDK derives from
the construct path, and a resource whose id changes is replaced (a table comes back
empty, the API with another URL, a function of fixed name fails to deploy). So their
resources keep the ids they had before the parts existed; `tests/infra/
test_stateful_ids.py` fails on any change to the ids of what holds data. (A stack that
leaves a construct's id out of its logical ids, by overriding `allocateLogicalId`, would
cost a call from CDK into Python for every reference it resolves: twice the synth time.)
"""

from __future__ import annotations

from aws_cdk import Aws, CfnOutput, Environment, Stack
from constructs import Construct

from infra.cells import CellPlacement
from infra.config import DeploymentConfig
from infra.directory import DirectoryEntry
from infra.failover_automation import FailoverAutomation
from infra.functions import Functions
from infra.mesh import RelayRecord
from infra.monitoring import Monitoring
from infra.mover import ShardMover, admit_peer_movers
from infra.presence_settle import PresenceSettle
from infra.regions import check_snap_start
from infra.relay import Relay
from infra.tables import Tables
from infra.user_probe import UserProbe
from infra.web import WebApp
from infra.websocket import WebSocketStage
from messenger.contract import USERS_TABLE
from messenger.logic.epoch import epoch_name


class MessengerStack(Stack):
    """One cell of the deployment, or one side of it (its primary or its standby)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeploymentConfig, cell: CellPlacement
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            env=Environment(account=cell.target.account, region=cell.target.region),
            description=f"Serverless messenger ({config.env}): WebSocket API, Lambda, "
            "DynamoDB, SNS mobile push",
        )
        self.config = config
        self.cell = cell
        check_snap_start(cell.target.region, config.snap_start)
        self.tables = Tables(self, config=config, cell=cell)
        self.web_socket = WebSocketStage(self, config=config)
        self.presence_settle = PresenceSettle(self, config=config)
        self.functions = Functions(
            self,
            config=config,
            cell=cell,
            tables=self.tables,
            connections_arn=self.web_socket.connections_arn,
            close_connections_arn=self.web_socket.close_connections_arn,
            settle=self.presence_settle,
        )
        self.web_socket.route(self.functions)
        stage = self.web_socket.stage
        if cell.has_directory:
            relay = Relay(cell=cell, functions=self.functions, connections_url=stage.callback_url)
            # Its ARN and relay key, where the peers find them (docs/scale.md "The mesh").
            record = RelayRecord(
                self,
                "RelayRecord",
                config=config,
                cell=cell,
                users_table=self.tables.by_spec[USERS_TABLE],
            )
            record.node.add_dependency(relay.function)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            env=config.env,
            api=self.web_socket.api,
            stage=stage,
            functions=self.functions.all,
            tables={spec.logical_name: table for spec, table in self.tables.by_spec.items()},
            removal_policy=config.removal_policy,
            alarm_email=config.alarm_email,
        )
        self.presence_settle.alarm(self.monitoring.topic)
        if cell.has_directory and not cell.standby and len(cell.cells.shard_map.cells()) > 1:
            self.mover = ShardMover(
                self,
                "ShardMover",
                config=config,
                placement=cell,
                tables=self.tables.by_spec,
                connections_url=stage.callback_url,
                connections_arns=[
                    self.web_socket.connections_arn,
                    self.web_socket.close_connections_arn,
                ],
                alarm_topic=self.monitoring.topic,
            )
            if cell.moves_across_accounts:
                admit_peer_movers(self.tables.by_spec, cell, cell.moves_across_accounts)
        if not cell.has_directory:
            self._web_app()
        elif not cell.standby:  # a failover switch publishes a standby's URL
            self._directory_entry()
        if not cell.standby and cell.cell.standby is not None and config.auto_failover:
            # The second vantage of the standby's switch (infra/failover_automation.py).
            UserProbe(
                self,
                "FailoverProbe",
                config=config,
                placement=cell,
                alarm_topic=self.monitoring.topic,
            )
        if cell.standby and config.auto_failover:
            FailoverAutomation(
                self,
                "Failover",
                config=config,
                placement=cell,
                users_table=self.tables.by_spec[USERS_TABLE],
                url=stage.url,
                api_id=self.web_socket.api.api_id,
                alarm_topic=self.monitoring.topic,
            )
        self._outputs()

    def _directory_entry(self) -> None:
        """The cell's URL in the directory, where clients find their home cell."""
        stage = self.web_socket.stage
        entry = DirectoryEntry(
            self,
            "DirectoryEntry",
            config=self.config,
            cell_id=self.cell.cell_id,
            location=self.cell.directory,
            url=stage.url,
            # The region part its functions name (CELL_EPOCH, else AWS_REGION).
            epoch=epoch_name(self.config.cell_epoch or self.cell.target.region, 0),
        )
        # Clients are sent to the stage only once it exists.
        entry.node.add_dependency(stage)

    def _web_app(self) -> None:
        """The cell's own web app, for clients given its URL. A deployment with a directory
        has one, on the directory's distribution: a page of a cell's own would connect to
        that cell only, wrong for users homed elsewhere."""
        web = WebApp(
            self,
            "Web",
            websocket_url=self.web_socket.stage.url,
            api_id=self.web_socket.api.api_id,
            removal_policy=self.config.removal_policy,
        )
        CfnOutput(
            self,
            "WebUrl",
            value=f"https://{web.distribution.distribution_domain_name}/",
            description="The web app (open it in a browser)",
        )

    def _outputs(self) -> None:
        stage = self.web_socket.stage
        dashboard = self.monitoring.dashboard.dashboard_name
        outputs = {
            "WebSocketUrl": (stage.url, "Clients connect here (docs/protocol.md §1)"),
            "ConnectionsUrl": (stage.callback_url, "The @connections management API"),
            "DashboardName": (dashboard, "CloudWatch dashboard"),
            "DashboardUrl": (
                f"https://console.aws.amazon.com/cloudwatch/home?region={Aws.REGION}"
                f"#dashboards/dashboard/{dashboard}",
                "CloudWatch dashboard in the console",
            ),
            "AlarmTopicArn": (
                self.monitoring.topic.topic_arn,
                "Subscribe here to receive the alarms",
            ),
        }
        for spec, table in self.tables.by_spec.items():
            outputs[f"{spec.logical_name}TableName"] = (
                table.table_name,
                f"DynamoDB table ({spec.env.value})",
            )
        for output_id, (value, description) in outputs.items():
            CfnOutput(self, output_id, value=value, description=description)
