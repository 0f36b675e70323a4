"""SnapStart in prod: API Gateway invokes an alias of a published, snapshotted version."""

from __future__ import annotations

from dataclasses import replace

import pytest

import infra.permissions
import infra.tables
from infra.functions import LIVE_ALIAS
from messenger.contract import (
    AUTHORIZER,
    LIMITS_TABLE,
    PRESENCE_WORKER,
    QUEUE_TABLE,
    ROUTES,
    USERS_TABLE,
    Access,
    Env,
)
from tests.infra.conftest import (
    FUNCTION_NAMES,
    GCM_APP,
    GCM_PARAMETER,
    PROD_CONTEXT,
    ssm_lookup,
    synthesize,
)
from tests.infra.test_api import _refs, routes_by_key

pytestmark = pytest.mark.infra


def aliases_by_function(synthesized) -> dict[str, str]:
    """Function logical id -> logical id of its `live` alias."""
    aliases = {}
    for alias_id, alias in synthesized.resources("AWS::Lambda::Alias").items():
        properties = alias["Properties"]
        assert properties["Name"] == LIVE_ALIAS
        (function_id,) = _refs(properties["FunctionName"])
        (version_id,) = _refs(properties["FunctionVersion"])
        version = synthesized.json["Resources"][version_id]
        # The alias points at a version of that same function
        assert version["Type"] == "AWS::Lambda::Version"
        assert _refs(version["Properties"]["FunctionName"]) == [function_id]
        aliases[function_id] = alias_id
    return aliases


def test_given_prod_then_every_function_snapshots_its_published_versions(prod):
    for name in FUNCTION_NAMES:
        properties = prod.json["Resources"][name]["Properties"]
        assert properties["SnapStart"] == {"ApplyOn": "PublishedVersions"}, name
    assert sorted(aliases_by_function(prod)) == sorted(FUNCTION_NAMES)


def test_given_prod_then_api_gateway_invokes_the_aliases_only(prod):
    aliases = aliases_by_function(prod)
    for route in ROUTES:
        _, properties = routes_by_key(prod)[route.key]
        (integration_id,) = _refs(properties["Target"])
        uri = prod.json["Resources"][integration_id]["Properties"]["IntegrationUri"]
        assert _refs(uri) == [aliases[route.function_name]], route.key
    (authorizer,) = prod.resources("AWS::ApiGatewayV2::Authorizer").values()
    assert _refs(authorizer["Properties"]["AuthorizerUri"]) == [aliases[AUTHORIZER.function_name]]
    permitted = sorted(
        _refs(permission["Properties"]["FunctionName"])[0]
        for permission in prod.resources("AWS::Lambda::Permission").values()
        if permission["Properties"]["Principal"] == "apigateway.amazonaws.com"
    )
    behind_the_api = [AUTHORIZER.function_name, *(route.function_name for route in ROUTES)]
    assert permitted == sorted(aliases[name] for name in behind_the_api)


def test_given_prod_then_the_functions_invoke_the_presence_function_s_alias(prod):
    # What Invoke is given, and what the role allows, is the alias SnapStart restores.
    name = f"{prod.config.stack_name}-{PRESENCE_WORKER.function_name}"
    variables = prod.json["Resources"]["Connect"]["Properties"]["Environment"]["Variables"]
    assert variables[Env.PRESENCE_FUNCTION.value] == f"{name}:{LIVE_ALIAS}"
    worker = prod.json["Resources"][PRESENCE_WORKER.function_name]["Properties"]
    assert worker["FunctionName"] == name


def test_given_dev_then_no_snapshot_is_billed(dev):
    for name in FUNCTION_NAMES:
        assert "SnapStart" not in dev.json["Resources"][name]["Properties"], name
    assert dev.resources("AWS::Lambda::Alias") == {}


def live_versions(synthesized) -> dict[str, str]:
    """Function logical id -> logical id of the version its `live` alias points at."""
    versions = {}
    for alias in synthesized.resources("AWS::Lambda::Alias").values():
        (function_id,) = _refs(alias["Properties"]["FunctionName"])
        (versions[function_id],) = _refs(alias["Properties"]["FunctionVersion"])
    return versions


def republished(before, after) -> set[str]:
    old, new = live_versions(before), live_versions(after)
    assert sorted(old) == sorted(new) == sorted(FUNCTION_NAMES)
    return {name for name in old if old[name] != new[name]}


PUSHERS = {route.function_name for route in ROUTES if Access.PUSH in route.access}


def test_given_a_changed_ssm_push_arn_then_the_functions_that_push_publish_a_new_version(
    prod, tmp_path
):
    # Given the SSM parameter now holds another platform application
    other = GCM_APP.replace("messenger-android", "messenger-android-2")
    changed = synthesize({**PROD_CONTEXT, **ssm_lookup(GCM_PARAMETER, other)}, tmp_path)

    # Then the functions that read it get a new version (and their alias moves to it)
    assert republished(prod, changed) == PUSHERS


def test_given_a_replaced_table_then_every_function_publishes_a_new_version(
    prod, tmp_path, monkeypatch
):
    # Given the Queue table's key changes, which makes CloudFormation replace it (a new
    # table with a new name, under the same logical id)
    queue = replace(QUEUE_TABLE, sort_key="itemKey")
    monkeypatch.setattr(infra.tables, "TABLES", (USERS_TABLE, queue, LIMITS_TABLE))
    monkeypatch.setattr(infra.permissions, "QUEUE_TABLE", queue)
    changed = synthesize(PROD_CONTEXT, tmp_path)

    # Then every function, all of which read the table's name, gets a new version
    assert republished(prod, changed) == set(FUNCTION_NAMES)
