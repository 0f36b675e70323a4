"""Who a connection belongs to (the connect signature of docs/protocol.md §1) and users' keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from messenger.contract import CONNECT_NONCE_SLACK_SECONDS
from messenger.dal.nonces import NonceReused, Nonces, RegistrationsExhausted, UserTaken
from messenger.dal.profiles import Profile, Profiles
from messenger.errors import AccessDenied, UnknownUser
from messenger.logic.cells import Cells, UserMoving
from messenger.logic.clock import Clock
from messenger.logic.connect_audience import ConnectAudience
from messenger.logic.peers import Peers
from messenger.logic.registrations import RegistrationBudget
from messenger_protocol.connect import ConnectQuery
from messenger_protocol.errors import InvalidConnect
from messenger_protocol.frames import KeysFrame
from messenger_protocol.limits import CONNECT_WINDOW_SECONDS, PRIMARY_DEVICE_ID


@dataclass(frozen=True)
class ConnectRequest:
    """A well-formed connect query, which connection attempt carries it (API Gateway's
    connectionId for the handshake: a retry of our own write is the same attempt), and
    the address it came from (requestContext.identity.sourceIp)."""

    query: ConnectQuery
    attempt: str
    source_ip: str = ""
    # The endpoint API Gateway says the client reached (wss://domainName/stage), if any.
    reached_at: str | None = None

    @property
    def user_id(self) -> str:
        return self.query.user_id


def parse_connect_query(
    params: Mapping[str, Any] | None,
    attempt: str,
    source_ip: str = "",
    reached_at: str | None = None,
) -> ConnectRequest:
    """Validate the connect query string; AccessDenied on anything missing or malformed."""
    try:
        return ConnectRequest(ConnectQuery.parse(params), attempt, source_ip, reached_at)
    except InvalidConnect as invalid:
        raise AccessDenied(str(invalid)) from None


def device_sign_key(profile: Profile, device_id: str) -> str:
    """The key a device's connect query must verify under (docs/protocol.md §1, §8): its
    own signKey from the user's stored device list (device 1's is the account key).
    AccessDenied (403) for a device the list does not name, a removed one say."""
    device = profile.devices.device(device_id)
    if device is None:
        raise AccessDenied(f"device {device_id!r} is not one of the user's devices")
    return device.sign_key


class Identity:
    """Proves who connects (registering a user on first use) and serves users' keys."""

    def __init__(
        self,
        profiles: Profiles,
        nonces: Nonces,
        registrations: RegistrationBudget,
        clock: Clock,
        cells: Cells,
        peers: Peers,
        audience: ConnectAudience,
    ) -> None:
        self._profiles = profiles
        self._nonces = nonces
        self._registrations = registrations
        self._clock = clock
        self._cells = cells
        self._peers = peers
        self._audience = audience

    def authenticate(self, request: ConnectRequest) -> str:
        """The userId a connect request proves, registering a new user on first use.

        Nothing is written unless the request is accepted.
        """
        query = request.query
        # Before any read: a query signed for another endpoint is worth nothing here.
        self._audience.admit(query, request.reached_at)
        if not self._cells.is_home(query.user_id):
            # Before any read or write: the user's home cell is the only one that may
            # register them or record their connections (docs/protocol.md §6).
            raise AccessDenied(f"this cell is not the home of {query.user_id!r}")
        if self._cells.is_moving(query.user_id):
            # Nothing is written for a user while the copy runs (logic/shard_move.py).
            raise UserMoving(f"{query.user_id!r} is moving to another cell; try again")
        now_s = self._clock.now_s()
        if abs(now_s - int(query.ts)) > CONNECT_WINDOW_SECONDS:
            raise AccessDenied("ts is outside the accepted window")
        # Past this, the query's ts is out of the window: a replay is refused anyway.
        nonce_expires = int(query.ts) + CONNECT_WINDOW_SECONDS + CONNECT_NONCE_SLACK_SECONDS
        profile = self._profiles.get_profile(request.user_id, consistent=True)
        if profile is None:
            profile = self._register(request, nonce_expires)
            if profile is None:
                return request.user_id  # registered, nonce spent in the same transaction
        if query.registers_keys and (
            query.sign_key != profile.sign_key or query.box_key != profile.box_key
        ):
            raise AccessDenied("userId is registered with other keys")
        if not query.verifies(device_sign_key(profile, query.device_id)):
            raise AccessDenied("signature does not verify")
        try:
            self._nonces.spend_nonce(
                query.user_id, query.nonce, nonce_expires, now_s, request.attempt
            )
        except NonceReused:
            raise AccessDenied("nonce was already used") from None
        return request.user_id

    def _register(self, request: ConnectRequest, nonce_expires: int) -> Profile | None:
        """Register the user. None when done; the winner's profile if someone was first."""
        query = request.query
        if query.sign_key is None or query.box_key is None:
            raise AccessDenied("unknown user and no keys given")
        if not query.is_primary_device:
            raise AccessDenied(f"a user is registered by its device {PRIMARY_DEVICE_ID}")
        profile = Profile(
            user_id=query.user_id,
            sign_key=query.sign_key,
            box_key=query.box_key,
            created_at=self._clock.now_ms(),
        )
        if not query.verifies(device_sign_key(profile, query.device_id)):
            raise AccessDenied("signature does not verify")
        try:
            # Counted where the address's budget is kept: in this transaction when that is
            # this cell, else first in that cell (logic/registrations.py).
            counts = self._registrations.count(request.source_ip, request.attempt)
            self._nonces.register_with_nonce(
                profile, query.nonce, nonce_expires, request.attempt, counts
            )
        except NonceReused:
            raise AccessDenied("nonce was already used") from None
        except RegistrationsExhausted:
            raise AccessDenied("too many new users from this address; try later") from None
        except UserTaken:
            winner = self._profiles.get_profile(query.user_id, consistent=True)
            if winner is None:
                raise AccessDenied("registration raced; try again") from None
            return winner
        return None

    def keys_of(self, user_id: str) -> KeysFrame:
        if not self._cells.is_home(user_id):
            return self._peers.keys_of(user_id)
        profile = self._profiles.get_profile(user_id)
        if profile is None:
            raise UnknownUser(f"no user {user_id!r}")
        # The signed device list from version 1 on (docs/protocol.md §8); absent at 0.
        return KeysFrame(
            user_id=profile.user_id,
            sign_key=profile.sign_key,
            box_key=profile.box_key,
            devices=profile.stored_devices if profile.devices.version >= 1 else None,
        )
