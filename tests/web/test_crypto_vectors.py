"""The shared crypto vectors are what the Python SDK computes (the JS SDK checks them too)."""

from __future__ import annotations

import json

import pytest

from messenger_client.keystore import PeerKeys
from messenger_protocol.connect import ConnectQuery
from tests.support.crypto_vectors import VECTORS, compute, render

pytestmark = pytest.mark.unit


def test_given_the_python_sdk_then_it_computes_the_committed_vectors():
    # Given the committed file, When the Python SDK computes the vectors again
    # Then they are the same, byte for byte (regenerate: python -m tests.support.crypto_vectors)
    assert VECTORS.read_text(encoding="utf-8") == render()


def test_given_the_connect_vector_then_the_server_side_verifies_it():
    # Given the vector's signed query
    vector = compute()
    query = ConnectQuery.parse(vector["connect"]["query"])

    # Then it verifies against alice's signKey and not against bob's
    alice, bob = vector["identities"]
    assert query.verifies(alice["signKey"])
    assert not query.verifies(bob["signKey"])


def test_given_the_identity_vectors_then_the_safety_numbers_are_the_keystores():
    for identity in compute()["identities"]:
        keys = PeerKeys(identity["userId"], identity["signKey"], identity["boxKey"])
        assert keys.fingerprint() == identity["fingerprint"]
        assert json.dumps(identity["fingerprint"]).count(" ") == 5
