"""Operator configuration from environment variables prefixed ``KUBETTS_``."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict
from tts_crds import names


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KUBETTS_")

    inference_image: str = "ghcr.io/kube-tts/inference:0.1.0"
    # empty: watch every namespace (cluster-wide RBAC); otherwise a comma-separated list
    watch_namespaces: str = ""
    log_level: str = "info"
    # GET /healthz for the pod's probes (leader or standby alike)
    health_port: int = 8081
    health_host: str = "0.0.0.0"

    # autoscaling: how often routers are scraped and decisions made
    autoscale_period_seconds: float = 5.0
    # router pods to scrape, by label (in router_namespace, or every namespace when empty) ...
    router_selector: str = f"{names.LABEL_NAME}={names.PROJECT},{names.LABEL_COMPONENT}=router"
    router_namespace: str = ""
    # ... and/or fixed metrics URLs (comma-separated), e.g. a router running outside the cluster
    router_metrics_urls: str = ""

    # leader election: only the holder of this Lease reconciles
    leader_election: bool = True
    lease_name: str = "kube-tts-operator"
    lease_namespace: str = ""
    lease_duration_seconds: int = 15

    # mirror or proxy for hf:// model sources (passed to the fetch init container)
    hf_endpoint: str = "https://huggingface.co"
    # size of the emptyDir that holds hf:// models
    model_cache_size: str = "20Gi"

    # TtsJobs (ADR 0050): the renderer pods' image (the router's: it has the audio libraries), their
    # ServiceAccount (no Role), the Secret key holding their API key ("<secret>/<key>", in the TtsJob's
    # namespace), the claim their files go to, where this process has that claim mounted (read to
    # count progress, written only to delete a retain: false job's files), and the router they call
    renderer_image: str = "ghcr.io/kube-tts/router:0.1.0"
    renderer_service_account: str = "kube-tts-renderer"
    renderer_key_secret: str = "kube-tts-renderer-key/api-key"  # noqa: S105  (a Secret's name, no key)
    renderer_concurrency: int = 2
    jobs_enabled: bool = True
    jobs_claim: str = "kube-tts-jobs"
    jobs_root: Path = Path(names.JOBS_MOUNT_PATH)
    router_url: str = f"http://kube-tts-router.kube-tts.svc:{names.ROUTER_PORT}"

    @property
    def renderer_key(self) -> tuple[str, str]:
        """(Secret name, key) of the renderer's API key."""
        name, _, key = self.renderer_key_secret.partition("/")
        if not name or not key:
            raise ValueError(f"KUBETTS_RENDERER_KEY_SECRET {self.renderer_key_secret!r} is not <secret>/<key>")
        return name, key

    @property
    def namespaces(self) -> list[str]:
        return [n.strip() for n in self.watch_namespaces.split(",") if n.strip()]

    @property
    def metrics_urls(self) -> list[str]:
        return [u.strip() for u in self.router_metrics_urls.split(",") if u.strip()]

    def resolved_lease_namespace(self) -> str:
        if self.lease_namespace:
            return self.lease_namespace
        sa_ns = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        return sa_ns.read_text().strip() if sa_ns.exists() else "kube-tts"
