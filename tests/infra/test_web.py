"""The web app's nested stack: a private bucket, CloudFront with OAC and security headers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from infra.nag import flatten_cfn
from infra.web import HSTS_MAX_AGE, SECURITY_HEADERS, EsbuildLocalBundling
from tests.infra.conftest import Synthesized

pytestmark = pytest.mark.infra

# The stack's region, as the templates spell it (tests/infra/conftest.py synthesizes them
# for a target region).
REGION = r"(<AWS::Region>|[a-z]{2}(-[a-z]+)+-\d)"


def web_template_path(synthesized: Synthesized) -> Path:
    (path,) = synthesized.outdir.glob("*Web*.nested.template.json")
    return path


def web_template(synthesized: Synthesized) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(web_template_path(synthesized).read_text())
    return document


def resources_of(template: dict[str, Any], cfn_type: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in template["Resources"].values() if r["Type"] == cfn_type]


def logical_id(template: dict[str, Any], cfn_type: str) -> str:
    (found,) = [name for name, r in template["Resources"].items() if r["Type"] == cfn_type]
    return found


def test_given_the_stack_then_the_web_app_is_a_nested_stack_with_its_output(each_env):
    (nested,) = each_env.resources("AWS::CloudFormation::Stack").values()
    # The API's id is all it is given: the wss origin is built from it
    (parameter,) = nested["Properties"]["Parameters"].values()
    (api,) = each_env.resources("AWS::ApiGatewayV2::Api")
    assert parameter == {"Ref": api}
    web_url = flatten_cfn(each_env.json["Outputs"]["WebUrl"]["Value"])
    assert web_url.startswith("https://<") and web_url.endswith(">/")


def test_given_the_site_bucket_then_it_is_private_encrypted_and_tls_only(each_env):
    template = web_template(each_env)
    (bucket,) = resources_of(template, "AWS::S3::Bucket")
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    (encryption,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    (policy,) = resources_of(template, "AWS::S3::BucketPolicy")
    statements = policy["PolicyDocument"]["Statement"]
    denies = [s for s in statements if s["Effect"] == "Deny"]
    assert [s["Condition"] for s in denies] == [{"Bool": {"aws:SecureTransport": "false"}}]
    # Only CloudFront, for this distribution, may read it (origin access control)
    reads = [s for s in statements if s["Effect"] == "Allow" and s["Action"] == "s3:GetObject"]
    (read,) = reads
    assert read["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    source = flatten_cfn(read["Condition"]["StringEquals"]["AWS:SourceArn"])
    assert source.endswith(
        f":distribution/<{logical_id(template, 'AWS::CloudFront::Distribution')}>"
    )


def test_given_the_distribution_then_it_serves_https_only_from_the_bucket_through_oac(each_env):
    template = web_template(each_env)
    (distribution,) = resources_of(template, "AWS::CloudFront::Distribution")
    config = distribution["DistributionConfig"]
    assert config["DefaultRootObject"] == "index.html"
    behavior = config["DefaultCacheBehavior"]
    assert behavior["ViewerProtocolPolicy"] == "redirect-to-https"
    assert behavior["AllowedMethods"] == ["GET", "HEAD"]
    assert behavior["ResponseHeadersPolicyId"] == {
        "Ref": logical_id(template, "AWS::CloudFront::ResponseHeadersPolicy")
    }
    (origin,) = config["Origins"]
    assert origin["OriginAccessControlId"]["Fn::GetAtt"][0] == logical_id(
        template, "AWS::CloudFront::OriginAccessControl"
    )
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}


def test_given_the_headers_policy_then_the_page_may_connect_to_the_api_and_nothing_else(each_env):
    template = web_template(each_env)
    (policy,) = resources_of(template, "AWS::CloudFront::ResponseHeadersPolicy")
    headers = policy["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    csp = flatten_cfn(headers["ContentSecurityPolicy"]["ContentSecurityPolicy"])
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    (api_parameter,) = template["Parameters"]
    assert re.fullmatch(
        rf"wss://<{api_parameter}>\.execute-api\.{REGION}\.<AWS::URLSuffix>",
        directives["connect-src"],
    )
    # The same policy messenger local sends (one list: web/app/security-headers.json)
    shared = json.loads(SECURITY_HEADERS.read_text())
    assert csp == shared["Content-Security-Policy"].replace("{connect}", directives["connect-src"])
    assert headers["FrameOptions"] == {"FrameOption": shared["X-Frame-Options"], "Override": True}
    assert headers["ReferrerPolicy"] == {
        "ReferrerPolicy": shared["Referrer-Policy"],
        "Override": True,
    }
    assert headers["ContentTypeOptions"] == {"Override": True}
    assert headers["StrictTransportSecurity"] == {
        "AccessControlMaxAgeSec": HSTS_MAX_AGE.to_seconds(),
        "IncludeSubdomains": True,
        "Override": True,
    }
    assert HSTS_MAX_AGE.to_seconds() >= 365 * 24 * 3600


def test_given_the_deployment_then_the_app_and_its_config_go_out_and_caches_are_invalidated(
    each_env,
):
    template = web_template(each_env)
    (deployment,) = resources_of(template, "Custom::CDKBucketDeployment")
    # The built app, config.js and config.json
    assert len(deployment["SourceObjectKeys"]) == 3
    markers = [
        flatten_cfn(value) for marker in deployment["SourceMarkers"] for value in marker.values()
    ]
    (api_parameter,) = template["Parameters"]
    stage = each_env.config.env
    url = rf'"wss://<{api_parameter}>\.execute-api\.{REGION}\.<AWS::URLSuffix>/{stage}"'
    # config.json has the whole URL; config.js has it in parts
    assert [marker for marker in markers if re.fullmatch(url, marker)]
    assert f"<{api_parameter}>" in markers
    assert deployment["DistributionPaths"] == ["/*"]
    assert deployment["SystemMetadata"]["cache-control"] == "no-cache"


@pytest.mark.slow
def test_given_local_bundling_then_esbuild_builds_the_app_without_docker(tmp_path):
    # When CDK asks for the asset
    assert EsbuildLocalBundling().try_bundle(str(tmp_path)) is True

    # Then it is the built app: the page, its script and style, no sources or tests
    names = sorted(path.name for path in tmp_path.iterdir())
    assert {"index.html", "app.js", "app.css"} <= set(names)
    assert not [name for name in names if name.endswith(".mjs") or name == "sdk"]
    script = (tmp_path / "app.js").read_text()
    assert 'import("./config.js")' in script
    assert "Unexpected server response" not in script  # the Node-only adapter stays out
