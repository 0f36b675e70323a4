"""Configuration, parsed once from the environment at first use. Logic never reads os.environ."""

from __future__ import annotations

import os
from functools import cache

from pydantic import BaseModel, ConfigDict, Field

from messenger.contract import DEFAULT_MESSAGE_TTL_SECONDS, Env


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    users_table: str = Field(min_length=3)
    queue_table: str = Field(min_length=3)
    message_ttl_seconds: int = Field(DEFAULT_MESSAGE_TTL_SECONDS, gt=0)
    connections_endpoint: str | None = None
    rate_limit_per_minute: int = Field(120, gt=0)
    rate_limit_burst: int = Field(60, gt=0)
    push_apps: dict[str, str] = Field(default_factory=dict)  # platform -> application ARN
    push_min_interval_seconds: int = Field(60, ge=0)


def settings_from(environ: dict[str, str] | os._Environ[str]) -> Settings:
    """Build Settings from an environment mapping; a missing table name fails loudly."""
    push_apps = {
        platform: environ[env.value]
        for platform, env in (
            ("APNS", Env.PUSH_APP_APNS),
            ("APNS_SANDBOX", Env.PUSH_APP_APNS_SANDBOX),
            ("GCM", Env.PUSH_APP_GCM),
        )
        if environ.get(env.value)
    }
    optional = {
        "message_ttl_seconds": environ.get(Env.MESSAGE_TTL_SECONDS.value),
        "connections_endpoint": environ.get(Env.CONNECTIONS_ENDPOINT.value) or None,
        "rate_limit_per_minute": environ.get(Env.RATE_LIMIT_PER_MINUTE.value),
        "rate_limit_burst": environ.get(Env.RATE_LIMIT_BURST.value),
        "push_min_interval_seconds": environ.get(Env.PUSH_MIN_INTERVAL_SECONDS.value),
    }
    return Settings.model_validate(
        {
            "users_table": environ.get(Env.USERS_TABLE.value, ""),
            "queue_table": environ.get(Env.QUEUE_TABLE.value, ""),
            "push_apps": push_apps,
            **{key: value for key, value in optional.items() if value is not None},
        }
    )


@cache
def settings() -> Settings:
    return settings_from(os.environ)
