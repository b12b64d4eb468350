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
