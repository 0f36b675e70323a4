"""The web app on AWS: a private S3 bucket behind CloudFront, in a nested stack of its own.

CloudFront reads the bucket through origin access control (the bucket is not public and
accepts TLS only), answers HTTPS only (HTTP is redirected), and adds the security headers
`messenger local` sends too (web/app/security-headers.json): a Content-Security-Policy whose
`connect-src` is the API's wss:// origin and nothing else, HSTS, nosniff, frame and
referrer policies. The app is built by esbuild on the machine that runs `cdk synth` (no
Docker, as the Lambda asset is built by pip) and deployed with a `config.js` naming the
stage's WebSocket URL, which the page imports (PROTOCOL.md §1).
"""

from __future__ import annotations

import json
import subprocess
import sys
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
)
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from infra.nag import acknowledge, flattened

REPO_ROOT = Path(__file__).resolve().parent.parent
WEB_DIR = REPO_ROOT / "web"
SECURITY_HEADERS = WEB_DIR / "app" / "security-headers.json"
HSTS_MAX_AGE = Duration.days(365)
# Built files, tests and the SDK's Node-only adapter never change what the page ships.
_NOT_SOURCES = ["dist", "test", "**/*.test.mjs"]


def security_headers(connect_origin: str) -> dict[str, str]:
    headers: dict[str, str] = json.loads(SECURITY_HEADERS.read_text(encoding="utf-8"))
    headers.pop("comment")
    csp = headers["Content-Security-Policy"]
    headers["Content-Security-Policy"] = csp.replace("{connect}", connect_origin)
    return headers


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


class WebApp(NestedStack):
    """The bucket, the distribution, and the deployment of the built app with its config."""

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
        destroyed = removal_policy == RemovalPolicy.DESTROY
        self.bucket = s3.Bucket(
            self,
            "Site",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=removal_policy,
            # dev goes entirely with its stack; prod keeps the bucket (nothing in it is data).
            auto_delete_objects=destroyed,
        )
        self.connect_origin = f"wss://{api_id}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}"
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment="Messenger web app",
            default_root_object="index.html",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=self._headers_policy(),
                compress=True,
            ),
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
        )
        self.deployment = s3deploy.BucketDeployment(
            self,
            "Deploy",
            destination_bucket=self.bucket,
            sources=[
                app_source(),
                s3deploy.Source.data(
                    "config.js", f"export default {json.dumps({'webSocketUrl': websocket_url})};\n"
                ),
                s3deploy.Source.json_data("config.json", {"webSocketUrl": websocket_url}),
            ],
            # A deploy is seen at once: browsers revalidate, CloudFront forgets its copies.
            cache_control=[s3deploy.CacheControl.no_cache()],
            distribution=self.distribution,
            distribution_paths=["/*"],
            memory_limit=512,
        )
        self._acknowledge()

    def _headers_policy(self) -> cloudfront.ResponseHeadersPolicy:
        headers = security_headers(self.connect_origin)
        return cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            comment="Messenger web app: CSP (connect to the API only), HSTS and the usual headers",
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

    def _acknowledge(self) -> None:
        """Findings of cdk-nag that do not fit a static page, each with why."""
        acknowledge(
            self.bucket,
            "AwsSolutions-S1",
            "The bucket holds only the built public page and CloudFront alone reads it "
            "through origin access control: access logs would record CloudFront's own reads",
        )
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
        self._acknowledge_deployment_handler()

    def _acknowledge_deployment_handler(self) -> None:
        """BucketDeployment's own Lambda function, made and granted by the CDK itself."""
        (handler,) = [
            child
            for child in self.node.children
            if child.node.id.startswith("Custom::CDKBucketDeployment")
        ]
        acknowledge(
            handler,
            "AwsSolutions-L1",
            "The CDK's BucketDeployment chooses the runtime of its own handler, which runs "
            "at deploy time only and copies the built page into the bucket",
        )
        assets = flattened(
            self,
            f"arn:{self.partition}:s3:::cdk-{DefaultStackSynthesizer.DEFAULT_QUALIFIER}"
            f"-assets-{self.account}-{self.region}/*",
        )
        site = flattened(self, f"{self.bucket.bucket_arn}/*")
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
