"""Amazon SNS mobile push: one platform endpoint per device token, and publishing to it.

SNS answers become domain errors here: an endpoint SNS disabled (the platform refused
its token) or deleted is PushEndpointGone; a token SNS refuses is PushTokenRejected.

What a push says is decided here too, once for every user: that there is something new,
and nothing else. No message content, no sender, no message id, no count of either, so
nothing about a conversation ever passes through Apple or Google.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from messenger.errors import PushEndpointGone, PushTokenRejected

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sns.type_defs import MessageAttributeValueTypeDef

# One collapse key for everything: a newer push replaces the banner of an older one.
COLLAPSE_KEY = "new_messages"
ALERT_TITLE = "New message"
ALERT_BODY = "You have new messages"
APNS_PLATFORMS = ("APNS", "APNS_SANDBOX")

# SNS hands back the ARN of an endpoint that already holds a token only inside this
# error text (AWS's own endpoint-registration sample reads it the same way).
_EXISTING_ENDPOINT = re.compile(r"Endpoint (arn:\S+) already exists with the same [Tt]oken")


@dataclass(frozen=True)
class Notification:
    """One SNS Publish: a MessageStructure=json document and its message attributes."""

    message: str
    attributes: dict[str, MessageAttributeValueTypeDef] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.message.encode("utf-8"))


def _attribute(value: str) -> MessageAttributeValueTypeDef:
    return {"DataType": "String", "StringValue": value}


def notification_for(platform: str) -> Notification:
    """The content-free push for a device of this platform."""
    if platform in APNS_PLATFORMS:
        payload: dict[str, Any] = {
            "aps": {
                "alert": {"title": ALERT_TITLE, "body": ALERT_BODY},
                # Lets a notification service extension run, and wakes the app to sync.
                "mutable-content": 1,
                "content-available": 1,
                "sound": "default",
            }
        }
        attributes = {
            # SNS turns these into the apns-push-type, apns-collapse-id and apns-priority
            # headers; an alert that carries content-available must still be type alert.
            "AWS.SNS.MOBILE.APNS.PUSH_TYPE": _attribute("alert"),
            "AWS.SNS.MOBILE.APNS.COLLAPSE_ID": _attribute(COLLAPSE_KEY),
            "AWS.SNS.MOBILE.APNS.PRIORITY": _attribute("10"),
        }
    else:
        # FCM HTTP v1 through SNS: a data message the app turns into its own notification,
        # collapsed on the device by FCM and sent at high priority so it wakes the app.
        payload = {
            "fcmV1Message": {
                "message": {
                    "data": {"kind": COLLAPSE_KEY},
                    "android": {"collapse_key": COLLAPSE_KEY, "priority": "high"},
                }
            }
        }
        attributes = {}
    document = {"default": ALERT_BODY, platform: json.dumps(payload, separators=(",", ":"))}
    return Notification(json.dumps(document, separators=(",", ":")), attributes)


@dataclass(frozen=True)
class EndpointState:
    token: str
    enabled: bool
    user_id: str  # CustomUserData: who registered the device last


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class SnsPush:
    """Platform endpoints and Publish. The SNS client is made on first use, so a function
    that never pushes never builds one."""

    def __init__(self, client_factory: Callable[[], SNSClient]) -> None:
        self._client_factory = client_factory
        self._client: SNSClient | None = None

    @property
    def client(self) -> SNSClient:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def create_endpoint(self, application_arn: str, token: str, user_id: str) -> str:
        """The endpoint for a token: a new one, or the one SNS already has for it."""
        try:
            response = self.client.create_platform_endpoint(
                PlatformApplicationArn=application_arn, Token=token, CustomUserData=user_id
            )
        except ClientError as error:
            if _code(error) != "InvalidParameter":
                raise
            # The token has an endpoint whose attributes differ (another user, or
            # disabled): that endpoint is the device's, and the caller takes it over.
            existing = _EXISTING_ENDPOINT.search(str(error.response["Error"].get("Message")))
            if existing:
                return existing.group(1)
            raise PushTokenRejected("the push service refused this device token") from None
        return response["EndpointArn"]

    def endpoint(self, endpoint_arn: str) -> EndpointState | None:
        """An endpoint's token, state and owner; None if SNS no longer has it."""
        try:
            attributes = self.client.get_endpoint_attributes(EndpointArn=endpoint_arn)["Attributes"]
        except ClientError as error:
            if _code(error) == "NotFound":
                return None
            raise
        return EndpointState(
            token=attributes.get("Token", ""),
            enabled=str(attributes.get("Enabled", "")).lower() == "true",
            user_id=attributes.get("CustomUserData", ""),
        )

    def claim_endpoint(self, endpoint_arn: str, token: str, user_id: str) -> None:
        """Point an endpoint at this token and user, and enable it (SNS disables an
        endpoint when the platform refuses its token; a fresh registration revives it)."""
        self.client.set_endpoint_attributes(
            EndpointArn=endpoint_arn,
            Attributes={"Token": token, "Enabled": "true", "CustomUserData": user_id},
        )

    def delete_endpoint(self, endpoint_arn: str) -> None:
        """Delete an endpoint (idempotent in SNS)."""
        self.client.delete_endpoint(EndpointArn=endpoint_arn)

    def publish(self, endpoint_arn: str, notification: Notification) -> None:
        """Send one push; PushEndpointGone if SNS will never deliver to this endpoint."""
        try:
            self.client.publish(
                TargetArn=endpoint_arn,
                Message=notification.message,
                MessageStructure="json",
                MessageAttributes=notification.attributes,
            )
        except ClientError as error:
            code = _code(error)
            if code in ("EndpointDisabled", "NotFound"):
                raise PushEndpointGone(endpoint_arn) from None
            # SNS answers InvalidParameter for an endpoint it deleted; ask rather than
            # read its error text.
            if code == "InvalidParameter" and self.endpoint(endpoint_arn) is None:
                raise PushEndpointGone(endpoint_arn) from None
            raise
