"""The web app of a deployment of cells (docs/protocol.md §6): one, on the directory's distribution.

The app is conftest's STANDBY_DEV_CONTEXT: c0 in us-east-1 with a standby in us-west-2,
c1 in eu-west-1. What is expected is written out here from the design, not computed with
infra/, so that these tests check it rather than repeat it. cdk-nag and cfn-lint run on
this app (with the web app in it) in tests/infra/test_checks.py (`standby_dev`).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.nag import flatten_cfn
from infra.web import SECURITY_HEADERS
from messenger_directory.handlers import PUBLIC_KEY_ATTRIBUTE
from tests.infra.conftest import Synthesized, SynthesizedCells
from tests.infra.test_api import _refs
from tests.infra.test_cells import bucket_policy, directory_behavior, directory_bucket, the

pytestmark = pytest.mark.infra

# The regions of the app's WebSocket APIs: c0's, c0's standby's, c1's.
API_SOURCES = {
    "wss://*.execute-api.us-east-1.amazonaws.com",
    "wss://*.execute-api.us-west-2.amazonaws.com",
    "wss://*.execute-api.eu-west-1.amazonaws.com",
}
DEPLOYMENT = "Custom::CDKBucketDeployment"


def site_bucket(stack: Synthesized) -> str:
    """The web app's bucket: where the deployment puts the app."""
    (deployment,) = stack.resources(DEPLOYMENT).values()
    (bucket,) = _refs(deployment["Properties"]["DestinationBucketName"])
    return bucket


def deployed_configs(app: SynthesizedCells, deployment: dict[str, Any]) -> dict[str, str]:
    """config.js and config.json as the deployment writes them: their deploy-time values
    (the markers of their source) as template values (`flatten_cfn`)."""
    properties = deployment["Properties"]
    configs = {}
    for key, markers in zip(
        properties["SourceObjectKeys"], properties["SourceMarkers"], strict=True
    ):
        staged = app.outdir / f"asset.{key.removesuffix('.zip')}"
        for path in staged.iterdir() if staged.is_dir() else []:
            if path.name in ("config.js", "config.json"):
                text = path.read_text()
                for marker, value in markers.items():
                    text = text.replace(marker, flatten_cfn(value))
                configs[path.name] = text
    return configs


def test_given_cells_then_the_directory_deploys_the_web_app_configured_with_the_directory(
    standby_dev,
):
    stack = standby_dev.directory
    (deployment,) = stack.resources(DEPLOYMENT).values()
    properties = deployment["Properties"]

    # The built app and its config go into the site bucket, and CloudFront forgets its copies
    assert len(properties["SourceObjectKeys"]) == 3
    assert properties["DistributionId"] == {"Ref": the(stack, "AWS::CloudFront::Distribution")[0]}
    assert properties["DistributionPaths"] == ["/*"]
    assert properties["SystemMetadata"]["cache-control"] == "no-cache"
    # (It deletes whatever else is in its bucket: never the directory's)
    assert properties["Prune"] is True
    assert site_bucket(stack) != directory_bucket(standby_dev)[0]

    # And the page's config names the directory on its own distribution and the key that
    # signs it, as the local stack's does: no cell's WebSocket (docs/protocol.md §6)
    distribution, _ = the(stack, "AWS::CloudFront::Distribution")
    (key_reader,) = stack.resources("Custom::DirectoryPublicKey")
    expected = {
        "directoryUrl": f"https://<{distribution}.DomainName>/directory.json",
        "directoryKey": f"<{key_reader}.{PUBLIC_KEY_ATTRIBUTE}>",
    }
    configs = deployed_configs(standby_dev, deployment)
    assert json.loads(configs["config.json"]) == expected
    assert configs["config.js"] == f"export default {json.dumps(expected)};\n"


def test_given_cells_then_one_distribution_serves_the_app_and_directory_json(standby_dev):
    stack = standby_dev.directory
    distribution, resource = the(stack, "AWS::CloudFront::Distribution")
    config = resource["Properties"]["DistributionConfig"]
    bucket = site_bucket(stack)

    # The page is the default, from the site bucket through its own origin access control
    assert config["DefaultRootObject"] == "index.html"
    default = config["DefaultCacheBehavior"]
    assert default["ViewerProtocolPolicy"] == "redirect-to-https"
    assert default["AllowedMethods"] == ["GET", "HEAD"]
    origins = {origin["Id"]: origin for origin in config["Origins"]}
    site_origin = origins[default["TargetOriginId"]]
    assert site_origin["DomainName"] == {"Fn::GetAtt": [bucket, "RegionalDomainName"]}
    assert site_origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    assert "OriginAccessControlId" in site_origin

    # And directory.json keeps its own behavior and origin (tests/infra/test_cells.py)
    assert directory_behavior(resource)["TargetOriginId"] != default["TargetOriginId"]
    assert len(config["Origins"]) == 2

    # And only this distribution may read the site bucket
    (read,) = [
        statement
        for statement in bucket_policy(stack, bucket)
        if statement["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    ]
    assert read["Action"] == "s3:GetObject"
    assert flatten_cfn(read["Condition"]["StringEquals"]["AWS:SourceArn"]).endswith(
        f":distribution/<{distribution}>"
    )

    # And its URL is an output, next to the directory's
    outputs = {name: flatten_cfn(output["Value"]) for name, output in stack.json["Outputs"].items()}
    assert outputs["WebUrl"] == f"https://<{distribution}.DomainName>/"
    assert outputs["DirectoryUrl"] == f"https://<{distribution}.DomainName>/directory.json"


def test_given_cells_then_the_page_may_connect_to_its_origin_and_the_cells_regions_only(
    standby_dev,
):
    stack = standby_dev.directory
    _, resource = the(stack, "AWS::CloudFront::Distribution")
    default = resource["Properties"]["DistributionConfig"]["DefaultCacheBehavior"]
    (policy,) = _refs(default["ResponseHeadersPolicyId"])
    headers = stack.json["Resources"][policy]["Properties"]["ResponseHeadersPolicyConfig"][
        "SecurityHeadersConfig"
    ]
    csp = headers["ContentSecurityPolicy"]["ContentSecurityPolicy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))

    # connect-src: the page's origin (directory.json) and API Gateway in exactly the
    # regions of the cells and the standby, each once
    sources = directives["connect-src"].split()
    assert sources[0] == "'self'"
    assert sorted(sources[1:]) == sorted(API_SOURCES)

    # The rest is the policy messenger local sends (one list: web/app/security-headers.json)
    shared = json.loads(SECURITY_HEADERS.read_text())
    assert csp == shared["Content-Security-Policy"].replace("{connect}", directives["connect-src"])
    assert headers["FrameOptions"] == {"FrameOption": shared["X-Frame-Options"], "Override": True}
    assert headers["StrictTransportSecurity"]["Override"] is True


def test_given_cells_then_no_cell_or_standby_stack_has_a_web_app(standby_dev):
    cells = {
        name: stack
        for name, stack in standby_dev.stacks.items()
        if name != standby_dev.config.directory_stack_name
    }
    assert sorted(cells) == ["Messenger-dev-c0", "Messenger-dev-c0-standby", "Messenger-dev-c1"]
    for name, stack in cells.items():
        for cfn_type in (
            "AWS::CloudFormation::Stack",
            "AWS::CloudFront::Distribution",
            "AWS::S3::Bucket",
            DEPLOYMENT,
        ):
            assert stack.resources(cfn_type) == {}, (name, cfn_type)
        assert "WebUrl" not in stack.json["Outputs"], name
    # The app's only nested stacks would be web apps: there are none
    assert list(standby_dev.outdir.glob("*.nested.template.json")) == []
