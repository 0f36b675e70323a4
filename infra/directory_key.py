"""The directory key (docs/protocol.md §6): an Ed25519 key in AWS KMS that signs every
published directory, and its public half as the stack output `DirectoryPublicKey`; and
the numbered copies' CloudFront behavior (`directory/N.json`, cached forever).

KMS holds Ed25519 keys (ECC_NIST_EDWARDS25519) and signs with ED25519_SHA_512, pure
Ed25519 over the bytes it is given (up to 4,096): the directory function hands it the
64-byte SHA-512 digest of the §6 text, and clients verify a plain Ed25519 signature of
those bytes (`messenger_directory.signer`). The private half never leaves KMS; only the
directory function's role may sign with it (`grant_sign`). The public half is read at
deploy time by a custom resource whose role may only read it.
"""

from __future__ import annotations

from collections.abc import Callable

from aws_cdk import CfnOutput, CustomResource, Duration, RemovalPolicy
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from messenger_directory.handlers import PUBLIC_KEY_ATTRIBUTE, PUBLIC_KEY_HANDLER, KeyProperty
from messenger_directory.signer import KMS_SIGNING_ALGORITHM

PUBLIC_KEY_RESOURCE_TYPE = "Custom::DirectoryPublicKey"
PUBLIC_KEY_OUTPUT = "DirectoryPublicKey"
# A numbered copy never changes: CloudFront keeps it as long as it likes (a year).
COPY_CACHE_DAYS = 365


class DirectoryKey(Construct):
    """The KMS key, and the output that names its public half."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        make_function: Callable[..., lambda_.Function],
    ) -> None:
        """`make_function(scope, name, description=..., handler=..., statements=...)`
        makes a function of the directory's asset (infra/directory.py)."""
        super().__init__(scope, construct_id)
        # Never destroyed with the stack: every client of the deployment trusts it.
        self.key = kms.Key(
            self,
            "Key",
            description="Messenger directory key: signs every directory version (§6)",
            key_spec=kms.KeySpec.ECC_NIST_EDWARDS25519,
            key_usage=kms.KeyUsage.SIGN_VERIFY,
            removal_policy=RemovalPolicy.RETAIN,
        )
        reader = make_function(
            self,
            "PublicKey",
            description="Messenger directory: reads the directory key's public half",
            handler=PUBLIC_KEY_HANDLER,
            statements=[
                iam.PolicyStatement(
                    sid="ReadDirectoryPublicKey",
                    actions=["kms:GetPublicKey"],
                    resources=[self.key.key_arn],
                )
            ],
            memory_size=128,
        )
        resource = CustomResource(
            self,
            "PublicKeyResource",
            service_token=reader.function_arn,
            resource_type=PUBLIC_KEY_RESOURCE_TYPE,
            properties={KeyProperty.KEY_ID.value: self.key.key_arn},
        )
        self.public_key = resource.get_att_string(PUBLIC_KEY_ATTRIBUTE)

    def grant_sign(self, function: lambda_.Function) -> None:
        grant_sign(function, self.key.key_arn)

    def make_multi_region(self) -> None:
        """A multi-Region primary key, which a second directory region replicates
        (infra/directory_regions.py). KMS fixes this at creation: CloudFormation refuses
        to change it on a key that exists (the update fails and rolls back)."""
        cfn_key = self.key.node.default_child
        assert isinstance(cfn_key, kms.CfnKey)
        cfn_key.multi_region = True

    def output(self, stack: Construct) -> None:
        CfnOutput(
            stack,
            PUBLIC_KEY_OUTPUT,
            value=self.public_key,
            description="The directory's public key (base64url Ed25519): clients refuse a "
            "directory it did not sign (docs/protocol.md §6)",
        )


def grant_sign(function: lambda_.Function, key_arn: str) -> None:
    """Only a directory function signs, and only with ED25519_SHA_512."""
    assert function.role is not None
    function.role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="SignDirectory",
            actions=["kms:Sign"],
            resources=[key_arn],
            conditions={"StringEquals": {"kms:SigningAlgorithm": KMS_SIGNING_ALGORITHM}},
        )
    )


def numbered_copies_behavior(
    scope: Construct, directory: cloudfront.BehaviorOptions
) -> cloudfront.BehaviorOptions:
    """directory/N.json: served as directory.json is (`directory`: its origin, headers),
    but cached for a year, so a CDN absorbs every client that follows a `dv`."""
    cache = cloudfront.CachePolicy(
        scope,
        "CopiesCachePolicy",
        comment="Messenger directory's numbered copies: immutable, cached for a year; no "
        "query string, header or cookie in the key",
        min_ttl=Duration.days(1),
        default_ttl=Duration.days(COPY_CACHE_DAYS),
        max_ttl=Duration.days(COPY_CACHE_DAYS),
        cookie_behavior=cloudfront.CacheCookieBehavior.none(),
        header_behavior=cloudfront.CacheHeaderBehavior.none(),
        query_string_behavior=cloudfront.CacheQueryStringBehavior.none(),
        enable_accept_encoding_gzip=True,
        enable_accept_encoding_brotli=True,
    )
    return cloudfront.BehaviorOptions(
        origin=directory.origin,
        viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
        allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
        cached_methods=cloudfront.CachedMethods.CACHE_GET_HEAD,
        cache_policy=cache,
        response_headers_policy=directory.response_headers_policy,
        compress=True,
    )
