"""The keystore: private keys that only their owner can read, pinned peer keys, safety numbers."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from messenger_client.errors import KeyChanged, ProfileExists, ProfileNotFound, UnsafePermissions
from messenger_client.keystore import (
    IDENTITY_FILE,
    PEERS_FILE,
    Identity,
    PeerKeys,
    Profile,
    config_home,
    fingerprint,
    normalize_fingerprint,
)

pytestmark = pytest.mark.unit


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_profile_keeps_its_keys_readable_by_the_owner_only(home: Path) -> None:
    # Given a permissive umask, as on many desktops
    previous = os.umask(0o022)
    try:
        # When a profile is created and pins a peer
        profile = Profile.create("alice", home=home)
        profile.pins.check_or_pin(Identity.generate("bob").public_keys)
    finally:
        os.umask(previous)
    # Then the directory is 0700 and every file in it 0600
    assert mode_of(profile.directory) == 0o700
    assert mode_of(profile.directory / IDENTITY_FILE) == 0o600
    assert mode_of(profile.directory / PEERS_FILE) == 0o600


def test_a_keystore_others_can_read_is_refused(home: Path) -> None:
    # Given alice's identity file made readable by everyone
    profile = Profile.create("alice", home=home)
    os.chmod(profile.directory / IDENTITY_FILE, 0o644)
    # When it is loaded, Then it is refused, saying how to fix it
    with pytest.raises(UnsafePermissions, match="chmod 600"):
        Profile.load("alice", home)


def test_a_keystore_directory_others_can_enter_is_refused(home: Path) -> None:
    profile = Profile.create("alice", home=home)
    os.chmod(profile.directory, 0o755)
    with pytest.raises(UnsafePermissions, match="chmod 700"):
        Profile.load("alice", home)


def test_keys_survive_a_reload_and_init_never_overwrites_them(home: Path) -> None:
    # Given a profile
    created = Profile.create("alice", home=home)
    # When it is created again, Then that is refused and the keys are unchanged
    with pytest.raises(ProfileExists):
        Profile.create("alice", home=home)
    loaded = Profile.load("alice", home)
    assert loaded.identity.public_keys == created.identity.public_keys
    assert loaded.identity.fingerprint() == created.identity.fingerprint()


def test_the_user_id_defaults_to_the_profile_name_and_can_differ(home: Path) -> None:
    assert Profile.create("alice", home=home).user_id == "alice"
    assert Profile.create("work", "alice.smith", home=home).user_id == "alice.smith"


@pytest.mark.parametrize("user_id", ["Alice", "ALICE-8491ef", "-x", "..."])
def test_a_look_alike_user_id_never_gets_keys(home: Path, user_id: str) -> None:
    # (issue 12, 5: the server refuses them; the SDK refuses before asking)
    with pytest.raises(ValueError, match="user id"):
        Profile.create("work", user_id, home=home)
    assert not (home / "work" / "identity.json").exists()


def test_a_missing_profile_says_to_run_init(home: Path) -> None:
    with pytest.raises(ProfileNotFound, match="init"):
        Profile.load("nobody", home)


def test_private_keys_never_show_in_a_repr(home: Path) -> None:
    profile = Profile.create("alice", home=home)
    document = json.loads((profile.directory / IDENTITY_FILE).read_text())
    shown = repr(profile.identity) + str(profile.identity)
    assert document["signingKey"] not in shown
    assert document["boxKey"] not in shown


def test_a_peer_is_pinned_on_first_use_and_a_changed_key_is_refused(home: Path) -> None:
    pins = Profile.create("alice", home=home).pins
    bob = Identity.generate("bob").public_keys
    impostor = Identity.generate("bob").public_keys
    # Given bob's keys pinned on first use
    assert pins.check_or_pin(bob) == bob
    # When the same keys come again, Then they are accepted
    assert pins.check_or_pin(bob) == bob
    # When other keys come for bob, Then they are refused loudly, naming both numbers
    with pytest.raises(KeyChanged) as refused:
        pins.check_or_pin(impostor)
    assert bob.fingerprint() in str(refused.value)
    assert impostor.fingerprint() in str(refused.value)
    # And the refusal carries both keys and both safety numbers (the JS SDK's shape too)
    assert (refused.value.user_id, refused.value.pinned, refused.value.offered) == (
        "bob",
        bob,
        impostor,
    )
    assert refused.value.pinned_fingerprint == bob.fingerprint()
    assert refused.value.offered_fingerprint == impostor.fingerprint()
    assert pins.get("bob") == bob
    # When the user re-verified and trusts the new keys, Then they replace the old
    pins.trust(impostor)
    assert pins.get("bob") == impostor


def test_a_safety_number_is_six_groups_of_five_digits_bound_to_user_and_keys() -> None:
    keys = Identity.generate("bob").public_keys
    number = keys.fingerprint()
    assert len(number.split(" ")) == 6
    assert all(len(group) == 5 and group.isdigit() for group in number.split(" "))
    assert keys.fingerprint() == number  # stable
    assert PeerKeys("rob", keys.sign_key, keys.box_key).fingerprint() != number
    assert Identity.generate("bob").public_keys.fingerprint() != number
    assert fingerprint("bob", b"\0" * 32, b"\1" * 32) != fingerprint("bob", b"\1" * 32, b"\0" * 32)


def test_a_safety_number_typed_by_a_person_is_normalized() -> None:
    assert normalize_fingerprint("12345-67890 12345\n67890  1234512345") == (
        "12345 67890 12345 67890 12345 12345"
    )


def test_profiles_live_in_messenger_home_else_the_xdg_config_dir(tmp_path: Path) -> None:
    assert config_home({"MESSENGER_HOME": str(tmp_path)}) == tmp_path
    assert config_home({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "messenger"
    assert config_home({}) == Path.home() / ".config" / "messenger"
    # XDG says a relative value is to be ignored
    assert config_home({"XDG_CONFIG_HOME": "relative"}) == Path.home() / ".config" / "messenger"


@pytest.mark.parametrize("name", ["", "../escape", "a/b", "x" * 65, ".", "..", ".hidden"])
def test_a_profile_name_cannot_leave_the_keystore_directory(home: Path, name: str) -> None:
    with pytest.raises(ValueError):
        Profile.create(name, home=home)
