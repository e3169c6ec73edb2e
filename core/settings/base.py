"""What every group of settings shares: its own environment prefix."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Group", "config"]


def config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, extra="ignore", populate_by_name=True)


class Group(BaseSettings):
    """One component's settings, read from the environment with its own prefix."""

    model_config = config("OAPIP_")
