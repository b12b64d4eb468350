"""Wyoming server configuration from environment variables (``KUBETTS_`` prefix).

``KUBETTS_URL`` and ``KUBETTS_API_KEY`` are the names ``source .devcluster/env`` exports (and the MCP
server reads). Wyoming has no authentication of its own, so this server holds one router key: a
user key is enough (it lists and speaks). Settings of this server alone are ``KUBETTS_WYOMING_*``.
"""

from __future__ import annotations

from urllib.parse import urlparse

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from tts_crds import names
from tts_crds.router_client import router_url


class WyomingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KUBETTS_WYOMING_", populate_by_name=True)

    # --- the router: the only thing this server talks to -------------------------------------------
    url: str = Field(
        default=f"http://127.0.0.1:{names.ROUTER_PORT}", validation_alias="KUBETTS_URL", description="The router."
    )
    # the chart's key Secret holds one key a line: the first one is used
    api_key: SecretStr = Field(default=SecretStr(""), validation_alias="KUBETTS_API_KEY")
    # seconds to connect to the router / to wait for each piece of a reply (a model that wakes from
    # zero holds the request for up to its activationTimeoutSeconds, 300 s by default)
    connect_timeout: float = Field(default=5.0, gt=0)
    timeout: float = Field(default=330.0, gt=0)

    # --- the Wyoming side ------------------------------------------------------------------------------
    uri: str = Field(
        default=f"tcp://127.0.0.1:{names.WYOMING_PORT}", description="Where to listen (tcp:// or unix://)."
    )
    # the model that speaks when Home Assistant names no voice; empty: the first speech model listed
    default_model: str = ""
    # PCM samples per audio-chunk event (wyoming-piper sends 1024)
    samples_per_chunk: int = Field(default=1024, ge=64, le=65536)
    # seconds the model and voice list is reused for resolving voice names before it is read again
    catalog_ttl: float = Field(default=30.0, ge=0)
    # advertise the server on the LAN over mDNS (_wyoming._tcp), so Home Assistant discovers it
    zeroconf: bool = False
    zeroconf_name: str = "kube-tts"
    zeroconf_host: str = ""

    log_level: str = "info"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return router_url(value)

    @field_validator("api_key", mode="before")
    @classmethod
    def _first_key(cls, value: object) -> object:
        if isinstance(value, str):
            lines = [line.strip() for line in value.splitlines() if line.strip()]
            return lines[0] if lines else ""
        return value

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme == "unix" and parsed.path:
            return value
        if parsed.scheme == "tcp" and parsed.hostname and parsed.port:
            return value
        raise ValueError(f"KUBETTS_WYOMING_URI must be tcp://host:port or unix:///path (got {value!r})")

    def tcp_port(self) -> int | None:
        return urlparse(self.uri).port if self.uri.startswith("tcp://") else None
