"""The web app on AWS: a private S3 bucket behind CloudFront.

CloudFront reads the bucket through origin access control (the bucket is not public and
accepts TLS only), answers HTTPS only (HTTP is redirected), and adds the security headers
`messenger local` sends too (web/app/security-headers.json): a Content-Security-Policy whose
`connect-src` names where the page may connect and nothing else, HSTS, nosniff, frame and
referrer policies. The app is built by esbuild on the machine that runs `cdk synth` (no
Docker, as the Lambda asset is built by pip) and deployed with a `config.js`, which the
page imports, saying where to connect.

- A single cell: `WebApp`, a nested stack of the cell's with a distribution of its own;
  `config.js` names the stage's WebSocket URL (docs/protocol.md §1), connect-src is that API.
- Cells (docs/protocol.md §6): one web app for the deployment, on the directory's distribution
  (infra/directory.py); `config.js` names `/directory.json` on the page's own origin and
  connect-src is that origin and API Gateway in the cells' regions (`regional_api_sources`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import (
    AssetHashType,
    Aws,
    BundlingOptions,
    DefaultStackSynthesizer,
    DockerImage,
    Duration,
    ILocalBundling,
    NestedStack,
    RemovalPolicy,
    Stack,
)
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from infra.nag import acknowledge, flattened
from infra.regions import URL_SUFFIX

REPO_ROOT = Path(__file__).resolve().parent.parent
WEB_DIR = REPO_ROOT / "web"
SECURITY_HEADERS = WEB_DIR / "app" / "security-headers.json"
INDEX = "index.html"
HSTS_MAX_AGE = Duration.days(365)
# Built files, tests and the SDK's Node-only adapter never change what the page ships.
_NOT_SOURCES = ["dist", "test", "**/*.test.mjs"]


def security_headers(connect_sources: Sequence[str]) -> dict[str, str]:
    """The page's headers: it may connect to `connect_sources` and nowhere else."""
    headers: dict[str, str] = json.loads(SECURITY_HEADERS.read_text(encoding="utf-8"))
    headers.pop("comment")
    csp = headers["Content-Security-Policy"]
    headers["Content-Security-Policy"] = csp.replace("{connect}", " ".join(connect_sources))
    return headers


def regional_api_sources(regions: Iterable[str]) -> list[str]:
    """connect-src for the cells' WebSocket APIs: any API of API Gateway in their regions.

    The page of a deployment of cells is served by the directory's stack, which deploys
    before every cell (each writes its entry into the directory's bucket) and cannot know
    their APIs' ids: API Gateway draws an id when a cell's stack creates its API, in
    another stack, often another account, and a failover points a cell at its standby's
    API. The regions are known at synth time, so the page may connect to
    `wss://*.execute-api.<region>.amazonaws.com` there: API Gateway's WebSocket endpoints
    in the deployment's regions, nothing else on the Internet.
    """
    return [f"wss://*.execute-api.{region}.{URL_SUFFIX}" for region in dict.fromkeys(regions)]


@jsii.implements(ILocalBundling)
class EsbuildLocalBundling:
    """CDK local bundling: `node web/build.mjs` in the synth process, never Docker."""

    def try_bundle(self, output_dir: str, *_options: Any, **_keywords: Any) -> bool:
        print("Bundling the web app with esbuild", file=sys.stderr)
        subprocess.run(
            ["node", str(WEB_DIR / "build.mjs"), "--outdir", output_dir],
            check=True,
            cwd=REPO_ROOT,
        )
        return True


def app_source() -> s3deploy.ISource:
    return s3deploy.Source.asset(
        str(WEB_DIR),
        asset_hash_type=AssetHashType.OUTPUT,
        exclude=_NOT_SOURCES,
        bundling=BundlingOptions(
            # Only used if local bundling declined, which it never does: it fails loudly.
            image=DockerImage.from_registry("node:22-slim"),
            local=EsbuildLocalBundling(),
        ),
    )


class Site:
    """The built app in a private bucket, and what a distribution needs to serve it.

    The pieces are made in `scope`: the bucket, the security headers, the distribution's
    behavior that serves the bucket through origin access control with those headers,
    and (`deploy`) the deployment of the built app with its config. A single cell's
    `WebApp` gives them a distribution of their own; a deployment of cells serves them
    on the directory's distribution (infra/directory.py), next to directory.json.
    """

    def __init__(
        self,
        scope: Construct,
        *,
        connect_sources: Sequence[str],
        connects_to: str,
        removal_policy: RemovalPolicy,
    ) -> None:
        self.scope = scope
        self.bucket = s3.Bucket(
            scope,
            "Site",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=removal_policy,
            # dev goes entirely with its stack; prod keeps the bucket (nothing in it is data).
            auto_delete_objects=removal_policy == RemovalPolicy.DESTROY,
        )
        self.headers = self._headers_policy(connect_sources, connects_to)
        acknowledge(
            self.bucket,
            "AwsSolutions-S1",
            "The bucket holds only the built public page and CloudFront alone reads it "
            "through origin access control: access logs would record CloudFront's own reads",
        )

    def behavior(self) -> cloudfront.BehaviorOptions:
        """The page and its files, from the bucket, with the security headers."""
        return cloudfront.BehaviorOptions(
            origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
            viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
            allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
            cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
            response_headers_policy=self.headers,
            compress=True,
        )

    def deploy(
        self, distribution: cloudfront.IDistribution, config: Mapping[str, str]
    ) -> s3deploy.BucketDeployment:
        """The built app and its `config` (config.js, which the page imports, and
        config.json for other clients) into the bucket, which holds nothing else: the
        deployment deletes whatever else is there."""
        deployment = s3deploy.BucketDeployment(
            self.scope,
            "Deploy",
            destination_bucket=self.bucket,
            sources=[
                app_source(),
                s3deploy.Source.data("config.js", f"export default {json.dumps(config)};\n"),
                s3deploy.Source.json_data("config.json", config),
            ],
            # A deploy is seen at once: browsers revalidate, CloudFront forgets its copies.
            cache_control=[s3deploy.CacheControl.no_cache()],
            distribution=distribution,
            distribution_paths=["/*"],
            memory_limit=512,
        )
        self._acknowledge_deployment_handler()
        return deployment

    def _headers_policy(
        self, connect_sources: Sequence[str], connects_to: str
    ) -> cloudfront.ResponseHeadersPolicy:
        headers = security_headers(connect_sources)
        return cloudfront.ResponseHeadersPolicy(
            self.scope,
            "SecurityHeaders",
            comment=f"Messenger web app: CSP (connect to {connects_to} only), HSTS and the "
            "usual headers",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=headers["Content-Security-Policy"], override=True
                ),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=HSTS_MAX_AGE, include_subdomains=True, override=True
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption[headers["X-Frame-Options"]],
                    override=True,
                ),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy[
                        headers["Referrer-Policy"].upper().replace("-", "_")
                    ],
                    override=True,
                ),
            ),
        )

    def _acknowledge_deployment_handler(self) -> None:
        """BucketDeployment's own Lambda function, made and granted by the CDK itself
        (one per stack, at the stack's top)."""
        stack = Stack.of(self.scope)
        (handler,) = [
            child
            for child in stack.node.children
            if child.node.id.startswith("Custom::CDKBucketDeployment")
        ]
        acknowledge(
            handler,
            "AwsSolutions-L1",
            "The CDK's BucketDeployment chooses the runtime of its own handler, which runs "
            "at deploy time only and copies the built page into the bucket",
        )
        assets = flattened(
            stack,
            f"arn:{stack.partition}:s3:::cdk-{DefaultStackSynthesizer.DEFAULT_QUALIFIER}"
            f"-assets-{stack.account}-{stack.region}/*",
        )
        site = flattened(stack, f"{self.bucket.bucket_arn}/*")
        role_reason = (
            "The CDK's BucketDeployment handler role, granted by the CDK: it reads the "
            "asset from the bootstrap bucket, writes and prunes the site bucket, and "
            "invalidates the distribution, which has no resource-level permissions"
        )
        acknowledge(
            handler,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSLambdaBasicExecutionRole]",
            role_reason,
        )
        for finding in [
            "Action::s3:GetObject*",
            "Action::s3:GetBucket*",
            "Action::s3:List*",
            "Action::s3:DeleteObject*",
            "Action::s3:Abort*",
            f"Resource::{assets}",
            f"Resource::{site}",
            "Resource::*",
        ]:
            acknowledge(handler, f"AwsSolutions-IAM5[{finding}]", role_reason)


class WebApp(NestedStack):
    """A single cell's web app: the site on a distribution of its own, connecting to the
    cell's API."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        websocket_url: str,
        api_id: str,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id, description="Messenger web app: S3 and CloudFront")
        self.connect_origin = f"wss://{api_id}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}"
        site = Site(
            self,
            connect_sources=[self.connect_origin],
            connects_to="the API",
            removal_policy=removal_policy,
        )
        self.bucket = site.bucket
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment="Messenger web app",
            default_root_object=INDEX,
            default_behavior=site.behavior(),
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
        )
        self.deployment = site.deploy(self.distribution, {"webSocketUrl": websocket_url})
        for rule, reason in {
            "AwsSolutions-CFR1": "The messenger is for anyone with a browser, in every country; "
            "the page is public and holds nothing but code that runs in the browser",
            "AwsSolutions-CFR2": "A static page with no server code behind it; the API it talks "
            "to admits a connection only with a signed query and throttles every route",
            "AwsSolutions-CFR3": "Access logs would keep every viewer's IP address and time of "
            "use, which the messenger's design avoids; CloudFront metrics still count requests",
            "AwsSolutions-CFR4": "The default cloudfront.net certificate is used, whose TLS "
            "policy CloudFront sets; a custom domain with TLSv1.2_2021 is the deployer's choice",
        }.items():
            acknowledge(self.distribution, rule, reason)
