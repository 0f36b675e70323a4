"""Mobile push on moto: platform applications for every platform, device tokens, and the
pushes moto recorded.

moto keeps what was published to a platform endpoint only in its backend
(`sns_backends[account][region].platform_endpoints[arn].messages`) and has no public
hook for it, so `Pushes` reads that backend: an internal API of the pinned moto version.
moto does not record message attributes for endpoints, so `PublishLog` records the
Publish calls the functions make (collapse id, push type) on their own SNS client.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3

from messenger_local.aws import ACCOUNT_ID as ACCOUNT
from messenger_local.aws import REGION
from messenger_protocol.names import PushPlatform
from tests.support.harness import Harness, harness
from tests.support.local_control import get_local

APP_NAME = "messenger-test"
# moto names a platform application's ARN after its platform and name, like SNS does.
APPLICATIONS: dict[str, str] = {
    platform: f"arn:aws:sns:{REGION}:{ACCOUNT}:app/{platform}/{APP_NAME}"
    for platform in PushPlatform
}
# Fake credentials: moto keeps them as attributes and never calls Apple or Google.
FAKE_CREDENTIALS = {
    "APNS": {"PlatformCredential": "fake-apns-key", "PlatformPrincipal": "fake-apns-cert"},
    "APNS_SANDBOX": {"PlatformCredential": "fake-apns-key", "PlatformPrincipal": "fake-cert"},
    "GCM": {"PlatformCredential": "fake-fcm-service-account-json"},
}


def apns_token() -> str:
    """An APNs device token: 32 random bytes in hex."""
    return secrets.token_hex(32)


def fcm_token() -> str:
    """An FCM registration token, shaped like real ones (instance id, colon, ~140 chars)."""
    alphabet = string.ascii_letters + string.digits + "_-"
    tail = "".join(secrets.choice(alphabet) for _ in range(134))
    return "".join(secrets.choice(alphabet) for _ in range(22)) + ":APA91b" + tail


def token_for(platform: str) -> str:
    return fcm_token() if platform == "GCM" else apns_token()


def create_platform_applications(
    sns: Any, platforms: tuple[str, ...] = tuple(PushPlatform)
) -> None:
    for platform in platforms:
        arn = sns.create_platform_application(
            Name=APP_NAME, Platform=platform, Attributes=FAKE_CREDENTIALS[platform]
        )["PlatformApplicationArn"]
        assert arn == APPLICATIONS[platform]


@dataclass(frozen=True)
class Push:
    """One Publish moto accepted for a platform endpoint."""

    endpoint_arn: str
    platform: str
    token: str
    document: dict[str, Any]  # the MessageStructure=json document

    def payload(self) -> dict[str, Any]:
        """The platform's own payload inside the document."""
        return json.loads(self.document[self.platform])


class Pushes:
    """Endpoints and pushes as moto's SNS backend holds them."""

    def __init__(self, sns: Any) -> None:
        self.sns = sns

    def _backend(self) -> Any:
        from moto.sns import sns_backends

        return sns_backends[ACCOUNT][REGION]

    def endpoints(self) -> list[Any]:
        return list(self._backend().platform_endpoints.values())

    def endpoint_for(self, token: str) -> Any | None:
        return next((e for e in self.endpoints() if e.token == token), None)

    def all(self) -> list[Push]:
        return [
            Push(e.arn, e.application.platform, e.token, json.loads(message))
            for e in self.endpoints()
            for message in e.messages.values()
        ]

    def owner(self, token: str) -> str:
        """The endpoint's CustomUserData, as GetEndpointAttributes reports it."""
        endpoint = self.endpoint_for(token)
        assert endpoint is not None
        attributes = self.sns.get_endpoint_attributes(EndpointArn=endpoint.arn)["Attributes"]
        return str(attributes.get("CustomUserData", ""))

    def to(self, token: str) -> list[Push]:
        return [push for push in self.all() if push.token == token]

    def disable(self, token: str) -> None:
        """What SNS does when APNs or FCM reports a token invalid."""
        endpoint = self.endpoint_for(token)
        assert endpoint is not None
        self.sns.set_endpoint_attributes(EndpointArn=endpoint.arn, Attributes={"Enabled": "false"})

    def delete(self, token: str) -> None:
        endpoint = self.endpoint_for(token)
        assert endpoint is not None
        self.sns.delete_endpoint(EndpointArn=endpoint.arn)


class PublishLog:
    """The Publish calls the functions make, with their parameters, as sent."""

    def __init__(self, h: Harness) -> None:
        self.calls: list[dict[str, Any]] = []
        h.services.push.client.meta.events.register(
            "provide-client-params.sns.Publish", self._record
        )

    def _record(self, params: dict[str, Any], **kwargs: Any) -> None:
        self.calls.append(dict(params))


@contextmanager
def push_harness(
    platforms: tuple[str, ...] = tuple(PushPlatform), **settings_overrides: Any
) -> Iterator[tuple[Harness, Pushes]]:
    """A Harness whose settings name a platform application per platform, made in moto."""
    apps = {platform: APPLICATIONS[platform] for platform in platforms}
    with harness(push_apps=apps, **settings_overrides) as h:
        sns = boto3.client("sns", region_name=REGION)
        create_platform_applications(sns, platforms)
        yield h, Pushes(sns)


def moto_server_pushes(aws_endpoint: str) -> dict[str, list[dict[str, Any]]]:
    """What a moto server recorded per device token, through its public `/moto-api/`
    (the same data `curl .../moto-api/data.json` shows: see the README)."""
    data = get_local(f"{aws_endpoint}/moto-api/data.json")
    return {
        endpoint["token"]: [json.loads(message) for message in endpoint["messages"].values()]
        for endpoint in data.get("sns", {}).get("PlatformEndpoint", [])
    }


def emitted_metrics(stdout: str) -> dict[str, float]:
    """Sum of every metric in the EMF documents Powertools printed."""
    totals: dict[str, float] = {}
    for line in stdout.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                values = value if isinstance(value, list) else [value]
                totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(values)
    return totals
