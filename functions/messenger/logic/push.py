"""Mobile push: registering devices (registerPush) and telling offline users something is new.

The rules: a push says only that there is something new (transport/push.py builds it);
receipts never alert; a burst of messages to someone offline makes one push per device,
then nothing more for the configured interval or until they have been online again; a
device whose endpoint SNS disabled or lost is forgotten; and a push that fails never fails
the send that caused it (the message is already safely queued).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from messenger.contract import MAX_PUSH_DEVICES, PUSH_SENT_LOG_MESSAGE, Metric
from messenger.dal.profiles import Profile, Profiles
from messenger.dal.push_devices import (
    DeviceMapChanged,
    PushDevice,
    PushDevices,
    device_key,
    devices_of,
    has_device_map,
)
from messenger.errors import PushEndpointGone, PushNotConfigured
from messenger.logic.clock import Clock
from messenger.observability import count, logger
from messenger.transport.push import SnsPush, notification_for
from messenger_protocol.frames import PushRegisteredFrame
from messenger_protocol.limits import PRIMARY_DEVICE_ID
from messenger_protocol.names import PushPlatform

SAVE_ATTEMPTS = 4
# Pushes run before the sender's ack. Past this much time, the devices not reached yet
# are skipped (and counted failed) so that a slow SNS never holds the ack for long.
PUSH_BUDGET_SECONDS = 3.0


def _application_of(endpoint_arn: str) -> str:
    """The platform application an endpoint ARN belongs to.

    ...:endpoint/PLATFORM/APP/ID belongs to ...:app/PLATFORM/APP (same region and account).
    """
    return endpoint_arn.replace(":endpoint/", ":app/", 1).rsplit("/", 1)[0]


class PushRegistration:
    """registerPush: an SNS endpoint per device token, recorded on the user's profile."""

    def __init__(
        self,
        profiles: Profiles,
        devices: PushDevices,
        gateway: SnsPush,
        clock: Clock,
        applications: Mapping[str, str],
    ) -> None:
        self._profiles = profiles
        self._devices = devices
        self._gateway = gateway
        self._clock = clock
        self._applications = applications

    def register(
        self,
        user_id: str,
        platform: PushPlatform,
        token: str,
        device_id: str = PRIMARY_DEVICE_ID,
    ) -> PushRegisteredFrame:
        """Create or refresh the device's endpoint and record it, for the one of the
        user's devices that registers it (docs/protocol.md §8); idempotent per token."""
        application = self._applications.get(platform)
        if not application:
            raise PushNotConfigured(f"push to {platform} devices is not set up on this server")
        key = device_key(platform, token)
        profile = self._profile(user_id)
        known = devices_of(profile).get(key)
        endpoint_arn = self._endpoint_for(application, key, token, user_id, known)
        device = PushDevice(key, platform, endpoint_arn, self._clock.now_ms(), device_id)
        for attempt in range(SAVE_ATTEMPTS):
            if attempt:
                profile = self._profile(user_id)
            devices = devices_of(profile)
            evict = None
            if key not in devices and len(devices) >= MAX_PUSH_DEVICES:
                evict = min(devices.values(), key=lambda d: d.registered_at)
            try:
                self._devices.save(user_id, device, map_exists=has_device_map(profile), evict=evict)
            except DeviceMapChanged:
                continue  # another registration wrote first; read again
            if evict is not None:
                self._drop_endpoint(evict)
            count(Metric.PUSH_DEVICES_REGISTERED)
            return PushRegisteredFrame(platform=platform)
        raise RuntimeError("push devices kept changing during registration")

    def _profile(self, user_id: str) -> Profile:
        profile = self._profiles.get_profile(user_id, consistent=True)
        if profile is None:
            raise RuntimeError("an authorized caller has no profile")
        return profile

    def _endpoint_for(
        self, application: str, key: str, token: str, user_id: str, known: PushDevice | None
    ) -> str:
        """The SNS endpoint for this token, enabled and owned by this user.

        Follows SNS's token-management advice: reuse the endpoint we recorded unless SNS
        lost it, create otherwise, then make its token, state and owner right.
        """
        state = None
        if known is not None and _application_of(known.endpoint_arn) == application:
            state = self._gateway.endpoint(known.endpoint_arn)
        if state is not None and known is not None:
            endpoint_arn = known.endpoint_arn
        else:
            endpoint_arn = self._gateway.create_endpoint(application, token, user_id)
            state = self._gateway.endpoint(endpoint_arn)
            if state is None:
                raise RuntimeError("SNS lost an endpoint it just returned")
        if state.user_id and state.user_id != user_id:
            # The device changed hands (someone else signed in on that phone): the last
            # user must stop getting pushes there.
            self._devices.remove(state.user_id, key, endpoint_arn)
            count(Metric.PUSH_DEVICES_TAKEN_OVER)
        if state.token != token or not state.enabled or state.user_id != user_id:
            self._gateway.claim_endpoint(endpoint_arn, token, user_id)
        return endpoint_arn

    def _drop_endpoint(self, device: PushDevice) -> None:
        try:
            self._gateway.delete_endpoint(device.endpoint_arn)
        except Exception:
            # Its record is gone already: nothing publishes to it again.
            logger.warning("could not delete an evicted push endpoint", exc_info=True)


class PushNotifier:
    """messaging.OfflineNotifier: a content-free push to each device of a user whom no live
    connection could hand a message."""

    def __init__(
        self, devices: PushDevices, gateway: SnsPush, clock: Clock, min_interval_seconds: int
    ) -> None:
        self._devices = devices
        self._gateway = gateway
        self._clock = clock
        self._min_interval_ms = min_interval_seconds * 1000

    def something_queued(
        self, profile: Profile, kind: str, devices: Sequence[str] | None = None
    ) -> None:
        """Push to the tokens registered by these of the user's devices (device 1 when not
        given: docs/protocol.md §8, each device gets the push for its own queue) unless a
        recent push already covers this burst."""
        if kind != "message":
            return  # receipts (and anything else that is not a message) never alert
        offline = set(devices) if devices is not None else {PRIMARY_DEVICE_ID}
        registered = devices_of(profile)
        targets = {k: d for k, d in registered.items() if d.device_id in offline}
        self._push_all(profile, targets)

    def forget_device(self, profile: Profile, device_id: str) -> int:
        """A device removed from the user's list (docs/protocol.md §8): every push token it
        registered is forgotten, record and endpoint, so it gets no push again; how many."""
        removed = [d for d in devices_of(profile).values() if d.device_id == device_id]
        for device in removed:
            self._forget(profile.user_id, device)
        return len(removed)

    def _push_all(self, profile: Profile, devices: Mapping[str, PushDevice]) -> None:
        if not devices:
            return
        try:
            due = self._devices.claim_push(
                profile.user_id, self._clock.now_ms(), self._min_interval_ms
            )
        except Exception:
            logger.warning("push collapse check failed", exc_info=True)
            count(Metric.PUSHES_FAILED, len(devices))
            return
        if not due:
            count(Metric.PUSHES_COLLAPSED)
            return
        deadline = time.monotonic() + PUSH_BUDGET_SECONDS
        for sent, device in enumerate(devices.values()):
            if time.monotonic() > deadline:
                count(Metric.PUSHES_FAILED, len(devices) - sent)
                logger.warning(
                    "push budget spent; devices skipped", extra={"recipient": profile.user_id}
                )
                return
            self._push(profile.user_id, device)

    def _push(self, user_id: str, device: PushDevice) -> None:
        notification = notification_for(device.platform)
        try:
            self._gateway.publish(device.endpoint_arn, notification)
        except PushEndpointGone:
            count(Metric.ENDPOINTS_DISABLED)
            logger.info(
                "push endpoint gone, device forgotten",
                extra={"recipient": user_id, "platform": device.platform},
            )
            self._forget(user_id, device)
            return
        except Exception:
            count(Metric.PUSHES_FAILED)
            logger.warning(
                "push failed",
                exc_info=True,
                extra={"recipient": user_id, "platform": device.platform},
            )
            return
        count(Metric.PUSHES_SENT)
        logger.info(
            PUSH_SENT_LOG_MESSAGE,
            extra={
                "recipient": user_id,
                "platform": device.platform,
                "payloadBytes": notification.size,
            },
        )

    def _forget(self, user_id: str, device: PushDevice) -> None:
        """Drop a dead device's record, then its endpoint (SNS keeps disabled ones forever)."""
        try:
            self._devices.remove(user_id, device.key, device.endpoint_arn)
            self._gateway.delete_endpoint(device.endpoint_arn)
        except Exception:
            # Left behind, the record costs one failed publish per push until it goes.
            logger.warning("could not forget a dead push device", exc_info=True)
