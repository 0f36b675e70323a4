"""Who may see a user's presence, in the Users table: the setting and its contact list.

Attributes this module owns on ("U#<userId>", "PROFILE") (dal/profiles.py reads them):
`vis` (everyone, contacts, nobody; absent is everyone), `visGen` (the generation of the
contact list in effect), `visDigest` (of the setting, so that sending the same again
writes nothing), `visCount`.

Item layout (pk, sk):
- ("U#<userId>", "SEE#<visGen>#<contactId>"): the contact may see this user's presence
  (with `vis` contacts, for the generation in effect).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from messenger.dal.batch import get_all, query_pages, write_all
from messenger.dal.errors import ConditionFailed, dynamodb_errors
from messenger.dal.profiles import Profile, profile_key, user_key, user_of_key
from messenger_protocol.names import PresenceVisibility

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SEE_PREFIX = "SEE#"


class VisibilityOvertaken(Exception):
    """A newer presence visibility was set meanwhile; this one never took effect."""


def _contact_key(owner: str, generation: str, contact: str) -> dict[str, Any]:
    return {"pk": {"S": user_key(owner)}, "sk": {"S": f"{SEE_PREFIX}{generation}#{contact}"}}


def _generation_prefix(generation: str) -> str:
    return f"{SEE_PREFIX}{generation}#"


def _in_effect_condition(based_on: str | None) -> str:
    """When a new generation may take effect: it is newer than the one in effect (a
    replacement), or the one an edit read is still in effect (an edit)."""
    if based_on is None:
        return "attribute_exists(pk) AND (attribute_not_exists(visGen) OR visGen < :gen)"
    if not based_on:
        return "attribute_exists(pk) AND attribute_not_exists(visGen)"
    return "attribute_exists(pk) AND visGen = :read AND visGen < :gen"


class Contacts:
    """Presence visibility settings and the contact lists they allow."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def contacts_among(self, owners: Iterable[Profile], candidate: str) -> set[str]:
        """Which of these users (with the contacts visibility) list `candidate`."""
        keys = [
            _contact_key(owner.user_id, owner.visibility_generation, candidate)
            for owner in owners
            if owner.visibility is PresenceVisibility.CONTACTS and owner.visibility_generation
        ]
        found = get_all(self._client, self._table, keys)
        return {user_of_key(item["pk"]["S"]) for item in found}

    def contacts_of_among(self, owner: Profile, candidates: Iterable[str]) -> set[str]:
        """Which of `candidates` the owner (with the contacts visibility) lists."""
        generation = owner.visibility_generation
        if owner.visibility is not PresenceVisibility.CONTACTS or not generation:
            return set()
        keys = [_contact_key(owner.user_id, generation, c) for c in dict.fromkeys(candidates)]
        prefix = _generation_prefix(generation)
        found = get_all(self._client, self._table, keys)
        return {item["sk"]["S"][len(prefix) :] for item in found}

    def contacts_of(self, owner: Profile) -> list[str]:
        """The contact list in effect for the owner (any setting), in id order."""
        generation = owner.visibility_generation
        if not generation:
            return []
        prefix = _generation_prefix(generation)
        query = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": {"S": user_key(owner.user_id)},
                ":prefix": {"S": prefix},
            },
            "ProjectionExpression": "sk",
        }
        return [
            item["sk"]["S"][len(prefix) :]
            for items in query_pages(self._client, query)
            for item in items
        ]

    def set_visibility(
        self,
        user_id: str,
        visibility: PresenceVisibility,
        contacts: Sequence[str],
        generation: str,
        digest: str,
        *,
        based_on: str | None = None,
    ) -> None:
        """Put a new presence visibility in effect, replacing the previous contact list.

        The contacts of the new generation are written first; one conditional update of
        the profile then switches to it, unless a newer generation is in effect already
        (VisibilityOvertaken, and the written contacts are removed again). Generations
        sort by time, so the newest setting wins whatever order the calls finish in.
        With `based_on` (the generation an edit read; "" for none) it takes effect only if
        that generation is still the one in effect, so that an edit never drops another.
        """
        write_all(
            self._client,
            self._table,
            [
                {"PutRequest": {"Item": _contact_key(user_id, generation, contact)}}
                for contact in contacts
            ],
        )
        try:
            with dynamodb_errors():
                self._client.update_item(
                    TableName=self._table,
                    Key=profile_key(user_id),
                    UpdateExpression=(
                        "SET vis = :vis, visGen = :gen, visDigest = :digest, visCount = :count"
                    ),
                    ConditionExpression=_in_effect_condition(based_on),
                    ExpressionAttributeValues={
                        ":vis": {"S": visibility.value},
                        ":gen": {"S": generation},
                        ":digest": {"S": digest},
                        ":count": {"N": str(len(contacts))},
                        **({":read": {"S": based_on}} if based_on else {}),
                    },
                )
        except ConditionFailed:
            self._delete_contacts(
                user_id, _generation_prefix(generation), f"{SEE_PREFIX}{generation}$"
            )
            raise VisibilityOvertaken(user_id) from None
        # Every older generation is out of effect now.
        self._delete_contacts(user_id, SEE_PREFIX, f"{SEE_PREFIX}{generation}")

    def _delete_contacts(self, user_id: str, low: str, high: str) -> None:
        """Delete the user's contact items whose sort keys lie from `low` to `high`."""
        query = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": {
                ":pk": {"S": user_key(user_id)},
                ":low": {"S": low},
                ":high": {"S": high},
            },
            "ProjectionExpression": "pk, sk",
        }
        keys = [
            {"pk": item["pk"], "sk": item["sk"]}
            for items in query_pages(self._client, query)
            for item in items
        ]
        write_all(self._client, self._table, [{"DeleteRequest": {"Key": key}} for key in keys])
