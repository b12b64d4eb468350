"""Router configuration from environment variables prefixed ``KUBETTS_``."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class RouterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KUBETTS_")

    host: str = "0.0.0.0"
    port: int = 8080
    # the namespace whose TtsDeployments this router serves; empty: the pod's own namespace
    namespace: str = ""
    # API keys: comma-separated, or a file with one key per line (a mounted Secret)
    api_keys: SecretStr = SecretStr("")
    api_keys_file: Path | None = None
    # keys are required unless this is set explicitly
    auth_disabled: bool = False
    # per inference pod: requests sent at once before another pod is preferred
    pod_concurrency: int = 4
    upstream_connect_timeout: float = 3.0
    upstream_read_timeout: float = 300.0
    max_input_chars: int = 4096
    log_level: str = "info"

    def keys(self) -> frozenset[str]:
        keys = {k.strip() for k in self.api_keys.get_secret_value().split(",") if k.strip()}
        if self.api_keys_file and self.api_keys_file.exists():
            keys |= {line.strip() for line in self.api_keys_file.read_text().splitlines() if line.strip()}
        return frozenset(keys)

    def resolved_namespace(self) -> str:
        if self.namespace:
            return self.namespace
        sa_ns = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        return sa_ns.read_text().strip() if sa_ns.exists() else "default"
