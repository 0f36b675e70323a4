"""registerPush and the offline fallback: content-free pushes through SNS (on moto)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders

from messenger.contract import MAX_PUSH_DEVICES
from messenger.dal.profiles import Profile
from messenger.dal.push_devices import devices_of
from messenger.logic import push as push_logic
from messenger.logic.push import PushNotifier
from messenger_protocol.names import PushPlatform
from tests.support.devices import LinkedDevice, device_list, sealed_message, set_devices_frame
from tests.support.harness import Connection, Harness
from tests.support.identities import TestUser
from tests.support.push import (
    PublishLog,
    Pushes,
    apns_token,
    emitted_metrics,
    fcm_token,
    push_harness,
    token_for,
)

pytestmark = pytest.mark.integration

SECRET = "the launch code is 0000"


@pytest.fixture
def hp() -> Iterator[tuple[Harness, Pushes]]:
    with push_harness() as running:
        yield running


@pytest.fixture
def h(hp: tuple[Harness, Pushes]) -> Harness:
    return hp[0]


@pytest.fixture
def pushes(hp: tuple[Harness, Pushes]) -> Pushes:
    return hp[1]


def register(h: Harness, connection: Connection, platform: str, token: str) -> dict[str, Any]:
    reply = h.send(connection, {"action": "registerPush", "platform": platform, "token": token})
    assert reply is not None
    return reply


def offline_with_devices(h: Harness, user: TestUser, *devices: tuple[str, str]) -> None:
    """The user registers each (platform, token), then closes the connection."""
    connection = h.connect(user)
    for platform, token in devices:
        assert register(h, connection, platform, token) == {
            "type": "pushRegistered",
            "platform": platform,
        }
    h.disconnect(connection)
    h.clock.advance(1)


def profile_of(h: Harness, user: TestUser) -> Profile:
    profile = h.services.profiles.get_profile(user.user_id, consistent=True)
    assert profile is not None
    return profile


def assert_content_free(
    push_document: dict[str, Any], frame: dict[str, Any], sender: TestUser
) -> None:
    """Nothing of the message, its sender or its ids anywhere in what SNS was given."""
    text = json.dumps(push_document)
    for secret in (
        SECRET,
        frame["body"],
        frame["nonce"],
        frame["messageId"],
        sender.user_id,
        f"m#{sender.user_id}#{frame['messageId']}",
    ):
        assert secret not in text


# --- registerPush --------------------------------------------------------------------


@pytest.mark.parametrize("platform", tuple(PushPlatform))
def test_register_creates_an_enabled_endpoint_owned_by_the_user(
    h: Harness, pushes: Pushes, bob: TestUser, platform: str
) -> None:
    # Given bob online
    b = h.connect(bob)
    token = token_for(platform)
    # When he registers his device
    reply = register(h, b, platform, token)
    # Then he hears pushRegistered
    assert reply == {"type": "pushRegistered", "platform": platform}
    # And SNS has one enabled endpoint for the token, on that platform's application
    [endpoint] = pushes.endpoints()
    assert endpoint.token == token and pushes.owner(token) == "bob"
    assert endpoint.application.platform == platform and endpoint.enabled
    # And bob's profile points at it, with no token anywhere in the record
    [device] = devices_of(profile_of(h, bob)).values()
    assert (device.platform, device.endpoint_arn) == (platform, endpoint.arn)
    assert token not in json.dumps(profile_of(h, bob).extra)


def test_registering_the_same_token_again_changes_nothing(
    h: Harness, pushes: Pushes, bob: TestUser
) -> None:
    b = h.connect(bob)
    token = apns_token()
    register(h, b, "APNS", token)
    before = devices_of(profile_of(h, bob))
    assert register(h, b, "APNS", token)["type"] == "pushRegistered"
    assert len(pushes.endpoints()) == 1
    after = devices_of(profile_of(h, bob))
    assert after.keys() == before.keys()
    assert [d.endpoint_arn for d in after.values()] == [d.endpoint_arn for d in before.values()]


def test_registering_again_re_enables_an_endpoint_sns_disabled(
    h: Harness, pushes: Pushes, alice: TestUser, bob: TestUser
) -> None:
    # Given bob's endpoint was disabled by SNS (APNs reported the token invalid)
    token = apns_token()
    b = h.connect(bob)
    register(h, b, "APNS", token)
    pushes.disable(token)
    # When the app registers the same token again
    register(h, b, "APNS", token)
    # Then the same endpoint is enabled again
    [endpoint] = pushes.endpoints()
    assert endpoint.enabled
    # And bob, once offline, gets pushes on it
    h.disconnect(b)
    a = h.connect(alice)
    h.send(a, h.message(a, bob, SECRET, "msg-p001"))
    assert len(pushes.to(token)) == 1


def test_a_user_may_have_several_devices(h: Harness, pushes: Pushes, bob: TestUser) -> None:
    b = h.connect(bob)
    tokens = [
        ("APNS", apns_token()),
        ("APNS", apns_token()),
        ("GCM", fcm_token()),
        ("APNS_SANDBOX", apns_token()),
    ]
    for platform, token in tokens:
        register(h, b, platform, token)
    devices = devices_of(profile_of(h, bob))
    assert sorted(d.platform for d in devices.values()) == sorted(p for p, _ in tokens)
    assert {e.token for e in pushes.endpoints()} == {t for _, t in tokens}


def test_a_device_that_changes_hands_stops_pushing_to_its_last_user(
    h: Harness, pushes: Pushes, alice: TestUser, bob: TestUser, carol: TestUser
) -> None:
    # Given alice registered a phone, then bob signs in on that phone and registers it
    token = apns_token()
    offline_with_devices(h, alice, ("APNS", token))
    offline_with_devices(h, bob, ("APNS", token))
    # Then the one endpoint is bob's, and alice has no device left
    assert len(pushes.endpoints()) == 1
    assert pushes.owner(token) == "bob"
    assert devices_of(profile_of(h, alice)) == {}
    # And a message to alice alerts nobody on bob's phone
    c = h.connect(carol)
    h.send(c, h.message(c, alice, SECRET, "msg-p002"))
    assert pushes.to(token) == []


def test_more_devices_than_the_limit_drop_the_oldest(
    h: Harness, pushes: Pushes, bob: TestUser
) -> None:
    b = h.connect(bob)
    tokens = [apns_token() for _ in range(MAX_PUSH_DEVICES + 1)]
    for token in tokens:
        register(h, b, "APNS", token)
        h.clock.advance(1)
    assert len(devices_of(profile_of(h, bob))) == MAX_PUSH_DEVICES
    # The first one registered is gone, its endpoint too
    assert pushes.endpoint_for(tokens[0]) is None
    assert {e.token for e in pushes.endpoints()} == set(tokens[1:])


def refused_push(
    h: Harness, pushes: Pushes, connection: Connection, frame: dict[str, Any]
) -> dict[str, Any]:
    before = h.dump()
    reply = h.send(connection, frame)
    assert reply is not None and reply["type"] == "error"
    assert reply["code"] == "BAD_REQUEST" and reply.get("ref") == "registerPush"
    assert h.dump() == before, "a refused frame wrote something"
    assert pushes.endpoints() == [], "a refused frame made an endpoint"
    return reply


@pytest.mark.parametrize(
    ("platform", "token"),
    [
        ("WNS", apns_token()),
        ("apns", apns_token()),
        ("APNS", "abc"),
        ("APNS", "z" * 64),
        ("APNS", apns_token() + "\n"),
        ("APNS", "ab" * 101),
        ("APNS_SANDBOX", fcm_token()),
        ("GCM", "short:token"),
        ("GCM", fcm_token().replace("A", "/")),
        ("GCM", fcm_token() + " "),
        ("GCM", 7),
        (None, apns_token()),
    ],
    # Named, not derived from the (random) tokens: every xdist worker collects the same ids.
    ids=[
        "unknown platform",
        "lowercase platform",
        "short APNs token",
        "APNs token not hex",
        "APNs token with a newline",
        "APNs token too long",
        "FCM token for APNs",
        "short FCM token",
        "FCM token with a slash",
        "FCM token with a space",
        "token not a string",
        "no platform",
    ],
)
def test_malformed_registration_is_refused_and_writes_nothing(
    h: Harness, pushes: Pushes, bob: TestUser, platform: Any, token: Any
) -> None:
    b = h.connect(bob)
    refused_push(h, pushes, b, {"action": "registerPush", "platform": platform, "token": token})


def test_platform_without_an_application_is_refused(bob: TestUser) -> None:
    # Given a server configured for APNS only
    with push_harness(platforms=("APNS",)) as (h, pushes):
        b = h.connect(bob)
        # When an Android device registers
        reply = refused_push(
            h, pushes, b, {"action": "registerPush", "platform": "GCM", "token": fcm_token()}
        )
        # Then it is told push is not set up for its platform
        assert "GCM" in reply["message"] and "not set up" in reply["message"]


# --- the offline fallback ------------------------------------------------------------


def test_offline_send_pushes_once_to_each_device_with_no_content(
    h: Harness,
    pushes: Pushes,
    alice: TestUser,
    bob: TestUser,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given bob offline with an iPhone, an Android phone and a development iPhone
    devices = [("APNS", apns_token()), ("GCM", fcm_token()), ("APNS_SANDBOX", apns_token())]
    offline_with_devices(h, bob, *devices)
    log = PublishLog(h)
    capsys.readouterr()
    # When alice sends him a message
    a = h.connect(alice)
    frame = h.message(a, bob, SECRET, "msg-p003")
    reply = h.send(a, frame)
    # Then the send is acknowledged as usual
    assert reply is not None and reply["type"] == "ack"
    # And each device got exactly one push
    for platform, token in devices:
        [push] = pushes.to(token)
        assert push.platform == platform
        # that says there is something new and nothing else
        assert_content_free(push.document, frame, alice)
        assert set(push.document) == {"default", platform}
    # And every Publish was MessageStructure=json, nothing secret in any parameter
    assert len(log.calls) == 3
    for call in log.calls:
        assert call["MessageStructure"] == "json"
        assert_content_free(call, frame, alice)
    assert emitted_metrics(capsys.readouterr().out).get("PushesSent") == 3


def test_push_payloads_are_what_each_platform_expects(
    h: Harness, pushes: Pushes, alice: TestUser, bob: TestUser
) -> None:
    apns, fcm = apns_token(), fcm_token()
    offline_with_devices(h, bob, ("APNS", apns), ("GCM", fcm))
    log = PublishLog(h)
    a = h.connect(alice)
    h.send(a, h.message(a, bob, SECRET, "msg-p004"))
    # APNs: a visible alert the app may rewrite and that wakes it to sync
    [apns_push] = pushes.to(apns)
    aps = apns_push.payload()["aps"]
    assert aps["alert"] == {"title": "New message", "body": "You have new messages"}
    assert aps["mutable-content"] == 1 and aps["content-available"] == 1
    # FCM HTTP v1: a high-priority data message with a collapse key
    [fcm_push] = pushes.to(fcm)
    message = fcm_push.payload()["fcmV1Message"]["message"]
    assert message["data"] == {"kind": "new_messages"}
    assert message["android"] == {"collapse_key": "new_messages", "priority": "high"}
    # And the APNs headers travel as SNS's reserved message attributes
    by_target = {call["TargetArn"]: call for call in log.calls}
    headers = {
        name: value["StringValue"]
        for name, value in by_target[apns_push.endpoint_arn]["MessageAttributes"].items()
    }
    assert headers == {
        "AWS.SNS.MOBILE.APNS.PUSH_TYPE": "alert",
        "AWS.SNS.MOBILE.APNS.COLLAPSE_ID": "new_messages",
        "AWS.SNS.MOBILE.APNS.PRIORITY": "10",
    }
    assert not by_target[fcm_push.endpoint_arn].get("MessageAttributes")


@pytest.mark.slow  # several seconds of frames: in the full run, not the fast tier
def test_a_burst_of_messages_makes_one_push_per_device(
    alice: TestUser, bob: TestUser, capsys: pytest.CaptureFixture[str]
) -> None:
    with push_harness(rate_limit_burst=200, push_min_interval_seconds=60) as (h, pushes):
        apns, fcm = apns_token(), fcm_token()
        offline_with_devices(h, bob, ("APNS", apns), ("GCM", fcm))
        a = h.connect(alice)
        capsys.readouterr()
        # When alice sends 100 messages while bob stays offline
        for n in range(100):
            reply = h.send(a, h.message(a, bob, f"{SECRET} {n}", f"msg-burst-{n:03d}"))
            assert reply is not None and reply["type"] == "ack"
        # Then each device got one push, and the other 99 sends were collapsed
        assert len(pushes.to(apns)) == 1 and len(pushes.to(fcm)) == 1
        metrics = emitted_metrics(capsys.readouterr().out)
        assert metrics.get("PushesSent") == 2 and metrics.get("PushesCollapsed") == 99
        assert len(h.queue_of(bob)) == 100
        # And once the interval has passed, the next message pushes again
        h.clock.advance(61)
        h.send(a, h.message(a, bob, SECRET, "msg-burst-late"))
        assert len(pushes.to(apns)) == 2 and len(pushes.to(fcm)) == 2


def test_a_new_stretch_offline_pushes_again_within_the_interval(
    h: Harness, pushes: Pushes, alice: TestUser, bob: TestUser
) -> None:
    token = apns_token()
    offline_with_devices(h, bob, ("APNS", token))
    a = h.connect(alice)
    h.send(a, h.message(a, bob, SECRET, "msg-p005"))
    assert len(pushes.to(token)) == 1
    # Given bob came online (saw the alert, synced) and went offline again
    h.clock.advance(5)
    h.disconnect(h.connect(bob))
    h.clock.advance(1)
    # When alice writes again, well inside the interval
    h.send(a, h.message(a, bob, SECRET, "msg-p006"))
    # Then that is news again: a second push
    assert len(pushes.to(token)) == 2


def test_online_recipient_gets_no_push(
    h: Harness, pushes: Pushes, alice: TestUser, bob: TestUser
) -> None:
    token = apns_token()
    b = h.connect(bob)
    register(h, b, "APNS", token)
    a = h.connect(alice)
    h.send(a, h.message(a, bob, SECRET, "msg-p007"))
    assert len(h.posts.of_type(b.connection_id, "message")) == 1
    assert pushes.all() == []


def test_stale_connection_answering_gone_falls_back_to_a_push(
    h: Harness, pushes: Pushes, alice: TestUser, bob: TestUser
) -> None:
    # Given bob's only recorded connection is gone without a $disconnect
    token = fcm_token()
    b = h.connect(bob)
    register(h, b, "GCM", token)
    h.posts.gone.add(b.connection_id)
    # When alice sends
    a = h.connect(alice)
    frame = h.message(a, bob, SECRET, "msg-p008")
    assert (h.send(a, frame) or {})["type"] == "ack"
    # Then the post was tried, failed, and bob's phone got one content-free push
    assert b.connection_id in h.posts.attempts
    [push] = pushes.to(token)
    assert_content_free(push.document, frame, alice)


def test_receipts_to_an_offline_sender_never_alert(
    h: Harness, pushes: Pushes, alice: TestUser, bob: TestUser
) -> None:
    # Given alice sent bob a message and went offline with a registered phone
    token = apns_token()
    a = h.connect(alice)
    register(h, a, "APNS", token)
    b = h.connect(bob)
    h.send(a, h.message(a, bob, SECRET, "msg-p009"))
    h.disconnect(a)
    # When bob acknowledges it (a delivered receipt) and marks it seen (a seen receipt)
    [message] = h.posts.of_type(b.connection_id, "message")
    h.send(b, {"action": "ack", "ids": [message["id"]]})
    h.send(b, {"action": "markSeen", "to": "alice", "messageIds": ["msg-p009"]})
    # Then both receipts wait in alice's queue, and her phone heard nothing
    assert len(h.queue_of(alice)) == 2
    assert pushes.all() == []


def test_the_notifier_itself_ignores_anything_but_messages(
    h: Harness, pushes: Pushes, bob: TestUser
) -> None:
    offline_with_devices(h, bob, ("APNS", apns_token()))
    notifier = h.services.offline
    assert isinstance(notifier, PushNotifier)
    for kind in ("receipt", "presence", ""):
        notifier.something_queued(profile_of(h, bob), kind)
    assert pushes.all() == []
    notifier.something_queued(profile_of(h, bob), "message")
    assert len(pushes.all()) == 1


def test_user_without_devices_costs_no_push_call(
    h: Harness, pushes: Pushes, alice: TestUser, bob: TestUser
) -> None:
    h.disconnect(h.connect(bob))
    log = PublishLog(h)
    a = h.connect(alice)
    h.send(a, h.message(a, bob, SECRET, "msg-p010"))
    assert log.calls == [] and pushes.all() == []
    assert "lastPushAt" not in profile_of(h, bob).extra


# --- failures ------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["disabled", "deleted"])
def test_a_dead_endpoint_is_forgotten_and_the_send_still_succeeds(
    h: Harness,
    pushes: Pushes,
    alice: TestUser,
    bob: TestUser,
    how: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given bob has an iPhone whose token APNs stopped accepting, and an Android phone
    dead, alive = apns_token(), fcm_token()
    offline_with_devices(h, bob, ("APNS", dead), ("GCM", alive))
    if how == "disabled":
        pushes.disable(dead)
    else:
        pushes.delete(dead)
    capsys.readouterr()
    # When alice sends
    a = h.connect(alice)
    reply = h.send(a, h.message(a, bob, SECRET, "msg-p011"))
    # Then the send is acknowledged and the message queued
    assert reply is not None and reply["type"] == "ack"
    assert len(h.queue_of(bob)) == 1
    # And the dead device is forgotten (record and endpoint), the live one pushed
    assert [d.platform for d in devices_of(profile_of(h, bob)).values()] == ["GCM"]
    assert pushes.endpoint_for(dead) is None
    assert len(pushes.to(alive)) == 1
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics.get("EndpointsDisabled") == 1 and metrics.get("PushesSent") == 1


def test_a_failing_publish_never_fails_the_send_and_is_counted(
    h: Harness,
    pushes: Pushes,
    alice: TestUser,
    bob: TestUser,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = apns_token()
    offline_with_devices(h, bob, ("APNS", token))

    # Given SNS fails every Publish (an outage, a throttle that outlasts the retries)
    def fail(params: dict[str, Any], **kwargs: Any) -> Any:
        response = AWSResponse(params["url"], 500, HTTPHeaders(), None)
        return response, {
            "Error": {"Code": "InternalError", "Message": "SNS is down"},
            "ResponseMetadata": {"HTTPStatusCode": 500},
        }

    h.services.push.client.meta.events.register("before-call.sns.Publish", fail)
    capsys.readouterr()
    # When alice sends
    a = h.connect(alice)
    reply = h.send(a, h.message(a, bob, SECRET, "msg-p012"))
    # Then the send is acknowledged, the message stays queued, the device is kept
    assert reply is not None and reply["type"] == "ack"
    assert len(h.queue_of(bob)) == 1
    assert len(devices_of(profile_of(h, bob))) == 1
    assert emitted_metrics(capsys.readouterr().out).get("PushesFailed") == 1


def test_a_failing_collapse_check_never_fails_the_send(
    h: Harness, pushes: Pushes, alice: TestUser, bob: TestUser
) -> None:
    offline_with_devices(h, bob, ("APNS", apns_token()))
    a = h.connect(alice)
    frame = h.message(a, bob, SECRET, "msg-p013")
    # Given the rate-limit and store writes succeed but the lastPushAt write is throttled
    # past every retry (UpdateItem: the 2nd one of this send is the collapse stamp)
    calls: list[str] = []

    def throttle_stamp(request: Any, **kwargs: Any) -> None:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
        if "lastPushAt" in body:
            calls.append("stamp")
            raise RuntimeError("throttled past every retry")

    h.services.dynamodb.meta.events.register_first("before-send.dynamodb", throttle_stamp)
    reply = h.send(a, frame)
    assert calls, "the collapse stamp was never attempted"
    assert reply is not None and reply["type"] == "ack"
    assert pushes.all() == []


def test_a_slow_sns_never_holds_the_ack_past_the_push_budget(
    h: Harness,
    pushes: Pushes,
    alice: TestUser,
    bob: TestUser,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given bob offline with three devices, and an SNS that takes 0.2 s per Publish
    offline_with_devices(
        h, bob, ("APNS", apns_token()), ("GCM", fcm_token()), ("APNS_SANDBOX", apns_token())
    )
    monkeypatch.setattr(push_logic, "PUSH_BUDGET_SECONDS", 0.1)
    h.services.push.client.meta.events.register(
        "before-call.sns.Publish", lambda **kwargs: time.sleep(0.2)
    )
    capsys.readouterr()
    # When alice sends
    a = h.connect(alice)
    reply = h.send(a, h.message(a, bob, SECRET, "msg-p014"))
    # Then the first device got its push, the two past the budget were skipped and counted
    assert reply is not None and reply["type"] == "ack"
    assert len(pushes.all()) == 1
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics.get("PushesSent") == 1 and metrics.get("PushesFailed") == 2


# --- linked devices (docs/protocol.md §8) ---------------------------------------------------


def test_each_device_registers_its_own_token_and_gets_the_push_for_its_own_queue(
    h: Harness, pushes: Pushes, alice: TestUser, bob: TestUser
) -> None:
    # Given bob's device 1 and his laptop each registered a token
    b = h.connect(bob)
    laptop = LinkedDevice(bob, "laptop")
    bobs = device_list(bob, 1, laptop)
    assert h.send(b, set_devices_frame(bobs))["type"] == "devices"
    phone_token, laptop_token = apns_token(), fcm_token()
    register(h, b, "APNS", phone_token)
    c = h.connect(laptop)
    register(h, c, "GCM", laptop_token)
    # When the laptop is offline and device 1 online, alice writes to both
    h.disconnect(c)
    a = h.connect(alice)
    frame = sealed_message(alice.box_key, bobs, device_list(alice, 0), "1", SECRET, "msg-pd0001")
    assert h.send(a, frame)["type"] == "ack"
    # Then only the laptop's token is pushed (device 1 took its copy live), content-free
    assert pushes.to(phone_token) == []
    [push] = pushes.to(laptop_token)
    assert_content_free(push.document, frame, alice)
