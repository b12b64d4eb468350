"""MCP server configuration from environment variables (``KUBETTS_`` prefix).

``KUBETTS_URL``, ``KUBETTS_API_KEY`` and ``KUBETTS_ADMIN_API_KEY`` are the names ``source
.devcluster/env`` exports, so a shell that can curl the router can start the MCP server too. The
settings that only the MCP server has are prefixed ``KUBETTS_MCP_`` (so the router's ``KUBETTS_PORT``
and friends never leak into them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from tts_crds import names
from tts_crds.router_client import router_url
from tts_crds.speech import ResponseFormat

OutputMode = Literal["inline", "both", "file"]
Transport = Literal["stdio", "http"]
MIB = 1024 * 1024


def _split(value: object) -> object:
    """Comma-separated lists in the environment (``a,b``) as well as JSON lists from code."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class McpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KUBETTS_MCP_", populate_by_name=True)

    # --- the router: the only thing this server talks to -------------------------------------------
    url: str = Field(
        default=f"http://127.0.0.1:{names.ROUTER_PORT}",
        validation_alias="KUBETTS_URL",
        description="The router's base URL.",
    )
    # stdio: the key every router call uses (a user key may speak and list)
    api_key: SecretStr = Field(default=SecretStr(""), validation_alias="KUBETTS_API_KEY")
    # stdio: used for create/delete voice and sleep/wake (admin scope); falls back to api_key
    admin_api_key: SecretStr = Field(default=SecretStr(""), validation_alias="KUBETTS_ADMIN_API_KEY")
    # seconds to wait for the router to accept a connection / for the rest of a call (a model that
    # wakes from zero may take its whole activationTimeoutSeconds, 300 s by default)
    connect_timeout: float = Field(default=5.0, gt=0)
    timeout: float = Field(default=330.0, gt=0)

    # --- transport ------------------------------------------------------------------------------------
    transport: Transport = "stdio"
    host: str = "127.0.0.1"
    port: int = Field(default=names.MCP_PORT, ge=1, le=65535)
    # HTTP: the Host headers accepted (DNS-rebinding protection), e.g. "mcp.example.com,kube-tts-mcp:*";
    # empty: the loopback names only. Origins likewise (browsers send one; other clients do not).
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # --- speech output ----------------------------------------------------------------------------------
    # inline: audio content in the tool result; both: also a file under output_dir, returned as a
    # resource link; file: only the file and its link (for clients that cannot take audio content)
    output_mode: OutputMode = "inline"
    output_dir: Path | None = None
    default_model: str = ""
    default_format: ResponseFormat = "mp3"

    # --- voice uploads --------------------------------------------------------------------------------
    # create_voice(audio_path=...) reads files only inside these directories; empty: audio_path is refused
    audio_dirs: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    max_voice_bytes: int = Field(default=10 * MIB, gt=0)
    max_transcription_bytes: int = Field(default=25 * MIB, gt=0)

    # --- productions ---------------------------------------------------------------------------------
    # get_production(wait=true): seconds between polls of the router, and the longest wait allowed
    production_poll_seconds: float = Field(default=2.0, gt=0)
    production_max_wait_seconds: float = Field(default=3600.0, gt=0)

    log_level: str = "warning"

    @field_validator("allowed_hosts", "allowed_origins", "audio_dirs", mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        return _split(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return router_url(value)

    @model_validator(mode="after")
    def _output(self) -> McpSettings:
        if self.output_mode != "inline" and self.output_dir is None:
            raise ValueError(f"KUBETTS_MCP_OUTPUT_MODE={self.output_mode} needs KUBETTS_MCP_OUTPUT_DIR")
        return self

    def host_allowlist(self) -> list[str]:
        """Host header values the HTTP transport accepts: the configured ones plus loopback."""
        return [*self.allowed_hosts, "127.0.0.1:*", "localhost:*", "[::1]:*"]

    def origin_allowlist(self) -> list[str]:
        return [*self.allowed_origins, "http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
