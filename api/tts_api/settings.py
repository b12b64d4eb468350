"""Router configuration from environment variables prefixed ``KUBETTS_``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


def _read_keys(inline: SecretStr, path: Path | None) -> frozenset[str]:
    """Keys from a comma-separated value plus a file with one key per line (``#`` starts a comment)."""
    keys = {k.strip() for k in inline.get_secret_value().split(",") if k.strip()}
    if path and path.exists():
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                keys.add(line)
    return frozenset(keys)


class RouterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KUBETTS_")

    host: str = "0.0.0.0"
    port: int = 8080
    # the namespace whose TtsDeployments this router serves; empty: the pod's own namespace
    namespace: str = ""

    # --- API keys: comma-separated, or a file with one key per line (a mounted Secret) ---------
    # user keys may speak, list and read status; admin keys may also create/delete voices and
    # wake/sleep models. An admin key is also a user key.
    api_keys: SecretStr = SecretStr("")
    api_keys_file: Path | None = None
    admin_api_keys: SecretStr = SecretStr("")
    admin_api_keys_file: Path | None = None
    # keys are required unless this is set explicitly (then every caller has admin rights)
    auth_disabled: bool = False
    # per-key token bucket: sustained requests per second and burst; 0 disables the limit
    rate_limit_per_second: float = Field(default=20.0, ge=0)
    rate_limit_burst: int = Field(default=100, ge=1)

    # --- routing ----------------------------------------------------------------------------------
    # per inference pod: requests sent at once; beyond it requests wait in the hold queue
    pod_concurrency: int = Field(default=4, ge=1)
    # per TtsDeployment: requests held while it wakes from zero or all its pods are busy
    hold_queue_size: int = Field(default=100, ge=0)
    # raise spec.replicas 0 -> 1 through the scale subresource when a request arrives at zero
    scale_from_zero: bool = True
    # seconds between speech.status events sent to SSE clients while their request waits
    sse_status_interval: float = Field(default=1.0, gt=0)
    upstream_connect_timeout: float = 3.0
    upstream_read_timeout: float = 300.0
    # how long GET /v1/status and the voice list wait for an inference pod's answer
    pod_query_timeout: float = 2.0

    # --- request limits -------------------------------------------------------------------------
    max_input_chars: int = 4096
    # any request body (a speech request with a base64 ref_audio, a voice upload); a transcription's
    # limit is transcription_max_bytes (+1 MiB for its form fields)
    max_request_bytes: int = 16 * MIB
    # an audio file to transcribe (OpenAI's limit)
    transcription_max_bytes: int = 25 * MIB
    # the model ``whisper-1`` (OpenAI clients' default) means; empty: the first transcription model by name
    transcription_model: str = ""
    # what OpenAI's model names (tts-1, tts-1-hd, gpt-4o-mini-tts) mean when no TtsDeployment claims
    # them (ADR 0042); empty: the first speech model by name
    default_model: str = ""
    # GET /v1/audio/voices and /v1/audio/models answer without a key (Open WebUI reads them without
    # one); off by default: with it off, Open WebUI falls back to OpenAI's names, which still speak
    open_audio_lists: bool = False
    voice_max_bytes: int = 10 * MIB
    voice_min_seconds: float = 1.0
    voice_max_seconds: float = 30.0

    # --- productions (TtsJobs, ADR 0050) -----------------------------------------------------------
    # where the default jobs volume is mounted (read-only): chapters are served from
    # <jobs_root>/<storage.path or namespace/name>/chapters/
    jobs_root: Path = Path("/var/lib/kube-tts/jobs")
    # the default jobs claim's name, so a TtsJob naming it in storage.claimName counts as on it;
    # empty: only jobs with an empty storage.claimName are on the default volume
    jobs_claim: str = ""

    # --- browser access ---------------------------------------------------------------------------
    # CORS is off unless origins are listed (comma-separated, e.g. https://ui.example.com)
    cors_origins: str = ""

    log_level: str = "info"

    def keys(self) -> frozenset[str]:
        return _read_keys(self.api_keys, self.api_keys_file)

    def admin_keys(self) -> frozenset[str]:
        return _read_keys(self.admin_api_keys, self.admin_api_keys_file)

    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    def resolved_namespace(self) -> str:
        if self.namespace:
            return self.namespace
        sa_ns = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        return sa_ns.read_text().strip() if sa_ns.exists() else "default"
