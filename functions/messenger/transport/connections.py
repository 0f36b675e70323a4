"""The @connections management API: post frames to sockets, learn which are gone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from messenger.errors import ConnectionGone
from messenger_protocol.frames import ServerFrame

if TYPE_CHECKING:
    from mypy_boto3_apigatewaymanagementapi import ApiGatewayManagementApiClient


class Connections:
    """Sends frames to WebSocket connections of one API stage."""

    def __init__(self, client: ApiGatewayManagementApiClient) -> None:
        self._client = client

    def close(self, connection_id: str) -> None:
        """Close a socket (DeleteConnection; its $disconnect follows). One already closed
        is no error."""
        try:
            self._client.delete_connection(ConnectionId=connection_id)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "GoneException" or status == 410:
                return
            raise

    def post(self, connection_id: str, frame: ServerFrame) -> None:
        """Send one frame; raises ConnectionGone when the socket is closed (HTTP 410)."""
        try:
            self._client.post_to_connection(
                ConnectionId=connection_id, Data=frame.to_json().encode()
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "GoneException" or status == 410:
                raise ConnectionGone(connection_id) from None
            raise
