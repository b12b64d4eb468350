"""Every Kubernetes and HTTP call the operator makes (the handlers stay free of client details)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from tts_crds import names, objects

from . import autoscale

log = logging.getLogger("tts_operator")
JSON = dict[str, Any]
FIELD_MANAGER = names.MANAGER
APPLY = "application/apply-patch+yaml"


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.policy = client.PolicyV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.objects = client.CustomObjectsApi(api)

    def to_dict(self, obj: Any) -> JSON:
        out: JSON = self.api.sanitize_for_serialization(obj)
        return out

    # --- children: server-side apply, field manager kube-tts-operator ----------------------

    async def apply(self, obj: JSON) -> JSON:
        name, ns = obj["metadata"]["name"], obj["metadata"]["namespace"]
        kw: dict[str, Any] = {"field_manager": FIELD_MANAGER, "force": True, "_content_type": APPLY}
        kind = obj["kind"]
        result: Any
        if kind == "Deployment":
            result = await self.apps.patch_namespaced_deployment(name, ns, obj, **kw)
        elif kind == "Service":
            result = await self.core.patch_namespaced_service(name, ns, obj, **kw)
        elif kind == "PodDisruptionBudget":
            result = await self.policy.patch_namespaced_pod_disruption_budget(name, ns, obj, **kw)
        elif kind == "ConfigMap":
            result = await self.core.patch_namespaced_config_map(name, ns, obj, **kw)
        else:
            raise ValueError(f"cannot apply {kind}")
        return self.to_dict(result)

    async def delete_pdb(self, namespace: str, name: str) -> None:
        try:
            await self.policy.delete_namespaced_pod_disruption_budget(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def get_deployment(self, namespace: str, name: str) -> JSON | None:
        try:
            return self.to_dict(await self.apps.read_namespaced_deployment(name, namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def create_job(self, obj: JSON) -> bool:
        """Create a batch/v1 Job; False when it exists already. (Created, not applied: a Job's pod
        template cannot change, so the one made first stays.)"""
        try:
            await self.batch.create_namespaced_job(
                obj["metadata"]["namespace"],
                obj,  # type: ignore[arg-type]  # a dict body serialises as is
                field_manager=FIELD_MANAGER,
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def get_job(self, namespace: str, name: str) -> JSON | None:
        try:
            return self.to_dict(await self.batch.read_namespaced_job(name, namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def list_pods(self, namespace: str, selector: str) -> list[JSON]:
        pods = await self.core.list_namespaced_pod(namespace, label_selector=selector)
        return [self.to_dict(p) for p in pods.items]

    # --- custom resources -------------------------------------------------------------------

    async def list_tts_deployments(self, namespace: str) -> list[JSON]:
        found = await self.objects.list_namespaced_custom_object(
            names.GROUP, names.VERSION, namespace, names.DEPLOYMENT_PLURAL
        )
        return list(found.get("items") or [])

    async def get_tts_deployment(self, namespace: str, name: str) -> JSON | None:
        return await self.get_custom(names.DEPLOYMENT_PLURAL, namespace, name)

    async def get_custom(self, plural: str, namespace: str, name: str) -> JSON | None:
        """A kube-tts custom resource, or None when there is none."""
        try:
            obj: JSON = await self.objects.get_namespaced_custom_object(
                names.GROUP, names.VERSION, namespace, plural, name
            )
            return obj
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def scale_replicas(self, namespace: str, name: str, replicas: int, resource_version: str | None) -> bool:
        """Set a TtsDeployment's ``spec.replicas``. ``resourceVersion`` makes this a compare-and-swap that
        never overwrites a concurrent wake-up: False when the object changed meanwhile (409)."""
        try:
            await self.objects.patch_namespaced_custom_object(
                names.GROUP,
                names.VERSION,
                namespace,
                names.DEPLOYMENT_PLURAL,
                name,
                {"metadata": {"resourceVersion": resource_version}, "spec": {"replicas": replicas}},
                _content_type="application/merge-patch+json",
            )  # type: ignore[call-arg]
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    async def patch_status(self, plural: str, namespace: str, name: str, status: JSON) -> None:
        await self.objects.patch_namespaced_custom_object_status(
            names.GROUP,
            names.VERSION,
            namespace,
            plural,
            name,
            {"status": status},
            _content_type="application/merge-patch+json",
        )  # type: ignore[call-arg]

    async def read_key(self, namespace: str, kind: str, name: str, key: str) -> bytes | None:
        """A ConfigMap (data or binaryData) or Secret value; None when the object or key is missing."""
        try:
            if kind == "configMapKeyRef":
                return objects.key_value(
                    self.to_dict(await self.core.read_namespaced_config_map(name, namespace)), key, False
                )
            return objects.key_value(self.to_dict(await self.core.read_namespaced_secret(name, namespace)), key, True)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def event(self, obj: JSON, reason: str, message: str, warning: bool = False) -> None:
        """A Kubernetes Event on ``obj``, posted directly (works from any task, unlike Kopf's queue)."""
        meta = obj["metadata"]
        involved = {
            "apiVersion": obj.get("apiVersion", names.API_VERSION),
            "kind": obj.get("kind"),
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
        }
        body = objects.event(
            {k: v for k, v in involved.items() if v is not None}, reason, message, FIELD_MANAGER, warning
        )
        try:
            await self.core.create_namespaced_event(meta["namespace"], body)  # type: ignore[arg-type]  # a dict body serialises as is
        except ApiException as exc:  # an event is worth a log line, never a failed reconcile
            log.info("event %s on %s/%s not recorded: %s", reason, meta["namespace"], meta["name"], exc.reason)

    # --- routers ----------------------------------------------------------------------------

    async def router_metrics_urls(self, selector: str, namespace: str, static: list[str]) -> list[str]:
        if namespace:
            pods = await self.core.list_namespaced_pod(namespace, label_selector=selector)
        else:
            pods = await self.core.list_pod_for_all_namespaces(label_selector=selector)
        urls = list(static)
        for pod in pods.items:
            ready = any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
            if ready and pod.status.pod_ip and not pod.metadata.deletion_timestamp:
                urls.append(f"http://{pod.status.pod_ip}:{names.ROUTER_PORT}/metrics")
        return urls


def body_text(exc: ApiException) -> str:
    """The API server's answer in an error, as text."""
    body = exc.body
    return body.decode(errors="replace") if isinstance(body, bytes) else str(body)


_scrape_errors: dict[str, str] = {}


def _scrape_problem(url: str, problem: str | None) -> None:
    """Log a scrape problem when it starts or changes, and its end: not every period."""
    before = _scrape_errors.get(url)
    if problem and problem != before:
        log.warning("cannot scrape router metrics %s: %s (no autoscaling decisions without them)", url, problem)
        _scrape_errors[url] = problem
    elif not problem and before:
        log.info("router metrics %s answer again", url)
        del _scrape_errors[url]


async def scrape(session: aiohttp.ClientSession, urls: list[str]) -> dict[tuple[str, str], autoscale.Load] | None:
    """Sum the load of every router; None when no router answered (no decisions then)."""

    async def one(url: str) -> dict[tuple[str, str], autoscale.Load] | None:
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=3)) as resp:
                if resp.status != 200:
                    _scrape_problem(url, f"HTTP {resp.status}")
                    return None
                loads = autoscale.parse_router_metrics(await resp.text())
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            _scrape_problem(url, str(exc) or exc.__class__.__name__)
            return None
        _scrape_problem(url, None)
        return loads

    results = [r for r in await asyncio.gather(*(one(u) for u in urls)) if r is not None]
    if not results:
        return None
    return autoscale.merge(results)


async def engine_speakers(session: aiohttp.ClientSession, pod_ip: str) -> list[str] | None:
    """The built-in speakers an inference pod reports (GET /v1/audio/voices)."""
    url = f"http://{pod_ip}:{names.INFERENCE_PORT}/v1/audio/voices"
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
            if resp.status != 200:
                return None
            body = await resp.json()
            return [str(v["id"]) for v in body.get("data", [])]
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError, KeyError) as exc:
        log.info("cannot read speakers from %s: %s", url, exc)
        return None
