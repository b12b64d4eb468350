"""The bridge's configuration: ``KUBETTS_SERVER`` (the TtsDeployment's ``spec.server`` as JSON) and the port."""

from __future__ import annotations

import json

from pydantic_settings import BaseSettings, SettingsConfigDict
from tts_crds.models import ServerSpec


class BridgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KUBETTS_")

    engine: str = "openai-compatible"
    model_uri: str = ""
    host: str = "0.0.0.0"
    port: int = 8000
    log_level: str = "info"
    # the spec.server of the TtsDeployment, as the operator writes it (operator/tts_operator/server_pod.py)
    server: str = "{}"
    # a server may take long to speak a long input before its first byte
    read_timeout: float = 300.0

    def server_spec(self) -> ServerSpec:
        return ServerSpec.model_validate(json.loads(self.server))
