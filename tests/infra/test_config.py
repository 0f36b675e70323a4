"""Deployment settings from CDK context (no synthesis)."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path
from typing import Any

import aws_cdk
import pytest
from aws_cdk import RemovalPolicy

from infra.app import build_app
from infra.cells import CellPlacement
from infra.config import (
    CellsConfig,
    Target,
    cells_from_context,
    config_from_context,
    target_from,
)

pytestmark = pytest.mark.infra

CDK_JSON = Path(__file__).resolve().parents[2] / "cdk.json"


def context(**values):
    return lambda key: values.get(key)


def test_given_no_context_then_it_is_dev():
    config = config_from_context(context())
    assert config.env == "dev"
    assert config.stack_name == "Messenger-dev"
    assert config.removal_policy == RemovalPolicy.DESTROY
    assert config.push_apps == {}


def test_given_prod_then_data_is_kept_and_protected():
    config = config_from_context(context(env="prod"))
    assert config.removal_policy == RemovalPolicy.RETAIN
    assert config.deletion_protection is True


def test_given_prod_then_snap_start_is_on_unless_turned_off():
    assert config_from_context(context(env="prod")).snap_start is True
    assert config_from_context(context(env="prod", snapStart="false")).snap_start is False
    assert config_from_context(context()).snap_start is False
    assert config_from_context(context(snapStart=True)).snap_start is True


def test_given_command_line_strings_then_numbers_and_flags_are_parsed():
    config = config_from_context(
        context(
            env="prod",
            throttleRate="2500",
            throttleBurst="1000",
            messageTtlSeconds="86400",
            registrationsPerIpPerHour="5",
            cellEpoch="eu-west-1-2",
            apiGatewayLogsRole="false",
            alarmEmail="ops@example.com",
        )
    )
    assert (config.throttle_rate, config.throttle_burst) == (2500, 1000)
    assert config.message_ttl_seconds == 86400
    assert config.registrations_per_ip_per_hour == 5
    assert config.cell_epoch == "eu-west-1-2"
    assert config_from_context(context()).cell_epoch is None
    assert config.api_gateway_logs_role is False
    assert config.alarm_email == "ops@example.com"


def test_given_connect_settings_then_v11_may_be_turned_off_and_endpoints_are_canonical():
    # Given no context, the v1.1 connect signature stays accepted (docs/protocol.md §1)
    assert config_from_context(context()).accept_v11_connect is True
    assert config_from_context(context()).connect_endpoints == ()
    config = config_from_context(
        context(acceptV11Connect="false", connectEndpoints="WSS://Chat.Example.com/, wss://b/x")
    )
    assert config.accept_v11_connect is False
    assert config.connect_endpoints == ("wss://chat.example.com", "wss://b/x")


def test_given_push_platforms_then_arns_and_ssm_names_are_taken_per_platform():
    config = config_from_context(
        context(
            **{
                "push:APNS": "arn:aws:sns:eu-west-1:123456789012:app/APNS/ios",
                "push:GCM": "/messenger/push/gcm",
            }
        )
    )
    assert config.push_apps == {
        "APNS": "arn:aws:sns:eu-west-1:123456789012:app/APNS/ios",
        "GCM": "/messenger/push/gcm",
    }


@pytest.mark.parametrize(
    "bad",
    [
        {"env": "staging"},
        {"push:APNS": "messenger-ios"},
        {"apiGatewayLogsRole": "maybe"},
        {"connectEndpoints": "https://chat.example.com"},
    ],
)
def test_given_a_wrong_value_then_synthesis_stops_with_a_clear_error(bad):
    with pytest.raises(ValueError):
        config_from_context(context(**bad))


def recommended_feature_flags() -> dict[str, object]:
    """What `cdk init` writes for the installed aws-cdk-lib (its recommended-feature-flags.json)."""
    package = Path(aws_cdk.__file__).parent / "_jsii"
    (tarball,) = package.glob("aws-cdk-lib@*.jsii.tgz")
    with tarfile.open(tarball) as archive:
        member = archive.extractfile("package/recommended-feature-flags.json")
        assert member is not None
        flags: dict[str, object] = json.load(member)
    return flags


def test_given_cdk_json_then_it_sets_every_recommended_feature_flag():
    context = json.loads(CDK_JSON.read_text())["context"]
    recommended = recommended_feature_flags()
    assert len(recommended) > 50
    assert {flag: context.get(flag) for flag in recommended} == recommended


def test_given_no_region_anywhere_then_synthesis_stops_and_says_where_to_set_one():
    with pytest.raises(ValueError, match="-c region=REGION"):
        target_from(context(), {})


def test_given_the_clis_profile_then_its_account_and_region_are_the_target():
    environ = {"CDK_DEFAULT_REGION": "eu-west-1", "CDK_DEFAULT_ACCOUNT": "111111111111"}
    assert target_from(context(), environ) == Target(region="eu-west-1", account="111111111111")
    # Context wins over the profile
    assert target_from(context(region="us-east-2"), environ).region == "us-east-2"
    # The account may be left to deploy time
    assert target_from(context(region="us-east-2"), {}) == Target(region="us-east-2")


def test_given_a_hand_set_throttle_the_account_cannot_carry_then_synthesis_stops():
    config = config_from_context(context(env="prod", throttleRate="10000", throttleBurst="5000"))
    with pytest.raises(ValueError, match="at most 6000/s"):
        config.stage_throttle("us-east-1")
    # Where the quota was raised, say so, and it fits
    raised = config_from_context(
        context(
            env="prod",
            throttleRate="10000",
            throttleBurst="5000",
            accountQuotaRate="20000",
            accountQuotaBurst="10000",
        )
    )
    assert raised.stage_throttle("us-east-1").rate == 10_000


def test_given_a_region_with_the_smaller_quota_then_the_stage_throttle_follows_it():
    prod = config_from_context(context(env="prod"))
    assert prod.stage_throttle("us-east-1").rate == 5_400
    assert prod.stage_throttle("eu-central-2").rate == 1_350


# --- cells (docs/protocol.md §6) ---------------------------------------------------------

TWO_CELLS = "c0:111111111111/us-east-1,c1:222222222222/eu-west-1"
# The AWS Organization of TWO_CELLS' accounts: cells in several accounts need one.
ORGANIZATION = "o-exampleorg01"


def test_given_no_cells_then_there_is_one_stack_as_ever():
    # One cell, c0, with every shard, no peer and no directory, where the CLI deploys
    cells = cells_from_context(context(), {"CDK_DEFAULT_REGION": "eu-west-1"})
    assert [(c.cell_id, c.target) for c in cells.cells] == [
        ("c0", Target(region="eu-west-1", account=None))
    ]
    assert cells.shard_map.to_compact() == "65536:0-65535=c0"
    assert not cells.has_directory
    assert cells.peers_of("c0") == ()


def test_given_no_cells_and_no_region_then_synthesis_stops_and_says_where_to_set_one():
    with pytest.raises(ValueError, match="no region to deploy to"):
        cells_from_context(context())


def test_given_a_standby_without_cells_then_synthesis_stops_and_says_why():
    # A standby takes over through the directory, which a single cell has not
    with pytest.raises(ValueError, match="standby:c0 needs -c cells="):
        cells_from_context(
            context(**{"standby:c0": "111111111111/us-west-2", "region": "us-east-1"})
        )


def test_given_cells_then_each_has_its_account_and_region_and_the_shards_split_evenly():
    cells = cells_from_context(context(cells=TWO_CELLS, organization=ORGANIZATION))
    assert cells.has_directory
    assert cells.organization == ORGANIZATION
    assert [(c.cell_id, c.account, c.region) for c in cells.cells] == [
        ("c0", "111111111111", "us-east-1"),
        ("c1", "222222222222", "eu-west-1"),
    ]
    assert cells.shard_map.to_compact() == "65536:0-32767=c0,32768-65535=c1"
    assert cells.directory_target == Target(region="us-east-1", account="111111111111")
    assert [peer.cell_id for peer in cells.peers_of("c0")] == ["c1"]


def test_given_a_shard_count_and_a_shard_map_then_they_are_taken():
    cells = cells_from_context(
        context(
            cells=TWO_CELLS,
            shards="1024",
            shardMap="c0:0-99,c1:100-1023",
            organization=ORGANIZATION,
        )
    )
    assert cells.shard_map.to_compact() == "1024:0-99=c0,100-1023=c1"
    # From cdk.json: a list of cells and a number of shards
    listed = cells_from_context(
        context(cells=TWO_CELLS.split(","), shards=16, organization=ORGANIZATION)
    )
    assert listed.shard_map.to_compact() == "16:0-7=c0,8-15=c1"


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"cells": "c0:111111111111"}, "is not <cell>:<account>/<region>"),
        ({"cells": "c0:1111/us-east-1"}, "account of c0 must be 12 digits"),
        ({"cells": "c0:111111111111/cn-north-1"}, "region 'cn-north-1' is not one"),
        ({"cells": "C0:111111111111/us-east-1"}, "'C0' is not a cell id"),
        ({"cells": "directory:111111111111/us-east-1"}, "'directory' is not a cell id"),
        # its tables and Relay would be named as cell c0's standby's
        ({"cells": "c0-standby:111111111111/us-east-1"}, "'c0-standby' is not a cell id"),
        ({"cells": "c0:111111111111/us-east-1,c0:222222222222/eu-west-1"}, "c0 is named twice"),
        (
            {"cells": "c0:111111111111/us-east-1,c1:111111111111/us-east-1"},
            "one cell per account and region, but 111111111111/us-east-1 has more",
        ),
        ({"cells": TWO_CELLS, "shards": "many"}, "shards must be an integer"),
        ({"cells": TWO_CELLS, "shards": "0"}, "shards must be from 1"),
        ({"cells": TWO_CELLS, "shards": "1"}, "2 cells need at least as many shards"),
        ({"cells": TWO_CELLS, "shardMap": "c0:0-2047,c1:2049-4095"}, "no gap or overlap"),
        ({"cells": TWO_CELLS, "shardMap": "c0:0-2047,c1:2048-4000"}, "end at 4000"),
        (
            {"cells": TWO_CELLS, "shards": "4096", "shardMap": "c0:0-2047,c9:2048-4095"},
            "not in cells: c9",
        ),
        ({"cells": TWO_CELLS, "shards": "4096", "shardMap": "c0:0-4095"}, "gives no shard to c1"),
        ({"cells": TWO_CELLS, "shardMap": "c0:0-2047;c1:2048-4095"}, "is not <cell>:<first>"),
        ({"shardMap": "c0:0-4095"}, "need -c cells="),
    ],
)
def test_given_bad_cells_then_synthesis_stops_and_says_what_is_wrong(values, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        cells_from_context(context(**values))


def test_given_bad_cells_then_the_app_refuses_before_making_any_stack(tmp_path):
    with pytest.raises(ValueError, match="account of c1 must be 12 digits"):
        build_app(
            {"aws:cdk:bundling-stacks": [], "cells": "c0:111111111111/us-east-1,c1:2/eu-west-1"},
            outdir=str(tmp_path),
        )
    assert not list(tmp_path.iterdir())


def first_cell_in_prod(cells: CellsConfig) -> CellPlacement:
    return CellPlacement(env="prod", cell=cells.cells[0], cells=cells, relay_qualifier="live")


def test_given_any_number_of_cells_then_a_cells_variables_are_the_same():
    key = "A" * 42 + "E"  # the directory stack's output DirectoryPublicKey

    def cells_of(count: int) -> Any:
        listed = ",".join(f"cell{i:03d}:{100000000000 + i}/us-east-1" for i in range(count))
        return cells_from_context(
            context(cells=listed, organization=ORGANIZATION, directoryKey=key)
        )

    # Given 2 cells and 2,000: no variable names a peer or holds the shard map
    two = first_cell_in_prod(cells_of(2)).environment()
    assert first_cell_in_prod(cells_of(2000)).environment() == two
    assert sum(len(name) + len(value) for name, value in two.items()) < 300
    assert two["DIRECTORY_PUBLIC_KEY"] == key
    # And a key that is not a 32-byte base64url one is refused, naming where it comes from
    with pytest.raises(ValueError, match="output DirectoryPublicKey"):
        cells_from_context(context(cells=TWO_CELLS, organization=ORGANIZATION, directoryKey="x"))


@pytest.mark.parametrize("organization", [None, "", "org-1", "o-short"])
def test_given_cells_in_several_accounts_then_an_organization_is_required(organization):
    with pytest.raises(ValueError, match="organization"):
        cells_from_context(context(cells=TWO_CELLS, organization=organization))
    # In one account, none is needed
    one_account = "c0:111111111111/us-east-1,c1:111111111111/eu-west-1"
    assert cells_from_context(context(cells=one_account)).organization is None
