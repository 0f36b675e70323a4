"""How API Gateway reads a Lambda REQUEST authorizer's answer.

The answer is `{"principalId", "policyDocument", "context"}`. The connection is
allowed when some statement allows `execute-api:Invoke` on the method ARN and none
denies it. The context reaches later events with every value turned into a string;
a nested object or list makes the answer invalid (API Gateway answers 500).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any


class InvalidAuthorizerResponse(Exception):
    """The authorizer returned something API Gateway cannot use (HTTP 500)."""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    principal_id: str
    context: dict[str, str]


def _matches(pattern: str, value: str) -> bool:
    # IAM wildcards: '*' is any run of characters, '?' is one character.
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, value) is not None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statement_applies(statement: dict[str, Any], method_arn: str) -> bool:
    actions = [str(a) for a in _as_list(statement.get("Action", []))]
    resources = [str(r) for r in _as_list(statement.get("Resource", []))]
    return any(_matches(a, "execute-api:Invoke") for a in actions) and any(
        _matches(r, method_arn) for r in resources
    )


def _context_value(value: Any) -> str:
    if isinstance(value, bool):
        return json.dumps(value)  # "true" / "false", as API Gateway writes them
    if isinstance(value, str | int | float):
        return str(value)
    raise InvalidAuthorizerResponse(f"context values must be scalars, got {type(value).__name__}")


def decide(response: Any, method_arn: str) -> Decision:
    """Evaluate an authorizer's answer for `method_arn`; raises InvalidAuthorizerResponse."""
    if not isinstance(response, dict):
        raise InvalidAuthorizerResponse("the authorizer must return an object")
    principal = response.get("principalId")
    document = response.get("policyDocument")
    if not isinstance(principal, str) or not isinstance(document, dict):
        raise InvalidAuthorizerResponse("principalId and policyDocument are required")
    statements = [s for s in _as_list(document.get("Statement", [])) if isinstance(s, dict)]
    applying = [s for s in statements if _statement_applies(s, method_arn)]
    denied = any(str(s.get("Effect", "")).lower() == "deny" for s in applying)
    allowed = any(str(s.get("Effect", "")).lower() == "allow" for s in applying)
    raw_context = response.get("context") or {}
    if not isinstance(raw_context, dict):
        raise InvalidAuthorizerResponse("context must be an object")
    context = {str(key): _context_value(value) for key, value in raw_context.items()}
    return Decision(allowed=allowed and not denied, principal_id=principal, context=context)
