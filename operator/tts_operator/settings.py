"""Operator configuration from environment variables prefixed ``KUBETTS_``."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KUBETTS_")

    inference_image: str = "ghcr.io/kube-tts/inference:0.1.0"
    # empty: watch every namespace (cluster-wide RBAC); otherwise a comma-separated list
    watch_namespaces: str = ""
    log_level: str = "info"

    @property
    def namespaces(self) -> list[str]:
        return [n.strip() for n in self.watch_namespaces.split(",") if n.strip()]
