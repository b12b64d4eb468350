"""``GET /v1/status``: every deployment and its pods, GPU capacity and use per node."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from kubernetes_asyncio.client.exceptions import ApiException
from tts_crds import names
from tts_crds.times import iso

from ..capacity import node_gpus
from ..deps import Authenticated, State
from ..kube import TRANSPORT_ERRORS
from ..pods import get_json
from ..routing import deployment_of, endpoint_of, pod_is_ready
from ..voices import condition, deployment_spec

router = APIRouter(tags=["status"], dependencies=[Authenticated])
JSON = dict[str, Any]


def _later(a: str | None, b: str | None) -> str | None:
    return max((x for x in (a, b) if x), default=None)  # RFC 3339 UTC strings sort by time


async def _pod_entry(state: State, pod: JSON) -> JSON:
    status = pod.get("status") or {}
    ready = pod_is_ready(pod)
    inference = None
    if ready:
        inference = await get_json(state.upstream, endpoint_of(pod), "/v1/status", state.settings.pod_query_timeout)
    return {
        "name": pod["metadata"]["name"],
        "node": (pod.get("spec") or {}).get("nodeName"),
        "ip": status.get("podIP"),
        "phase": status.get("phase"),
        "ready": ready,
        "terminating": bool(pod["metadata"].get("deletionTimestamp")),
        "outstanding_requests": state.dispatcher.balancer.outstanding.get(pod["metadata"]["name"], 0),
        # the inference server's own /v1/status: engine, device, GPU memory, in-flight and queued
        "inference": inference,
    }


async def _deployment_entry(state: State, obj: JSON, pods: list[JSON]) -> JSON:
    name = obj["metadata"]["name"]
    spec = deployment_spec(obj)
    replicas = spec.replicas if spec else 0
    status = obj.get("status") or {}
    ready = condition(obj) or {}
    endpoints = state.endpoints(name)
    router_last = state.dispatcher.last_finished.get(name)
    mine = sorted(
        (p for p in pods if deployment_of(p) == name),
        key=lambda p: p["metadata"]["name"],
    )
    return {
        "name": name,
        "engine": spec.engine.value if spec else None,
        "model": spec.model.uri if spec else None,
        "replicas": replicas,
        "min_replicas": spec.min_replicas if spec else 0,
        "max_replicas": spec.max_replicas if spec else None,
        "ready_replicas": len(endpoints),
        "scaled_to_zero": replicas == 0 and not endpoints,
        "waking": state.activator.waking(name),
        "ready": ready.get("status") == "True",
        "reason": ready.get("reason"),
        "message": ready.get("message"),
        "last_activity": _later(status.get("lastActivityTime"), iso(router_last) if router_last else None),
        "scaled_to_zero_at": status.get("scaledToZeroAt"),
        "inflight_requests": state.dispatcher.inflight(name),
        "queued_requests": state.dispatcher.queued(name),
        "gpu_per_replica": spec.resources.gpu if spec else 0,
        "gpu_resource": spec.resources.gpu_resource_name if spec else names.DEFAULT_GPU_RESOURCE,
        "pods": list(await asyncio.gather(*(_pod_entry(state, p) for p in mine))),
    }


@router.get("/v1/status")
async def cluster_status(state: State) -> JSON:
    pods = list(state.pods.objects.values())
    deployments = [o for _, o in sorted(state.deployments.objects.items())]
    errors: list[str] = []
    nodes: list[JSON] | None = None
    scope = None
    try:
        node_list = await state.kube.list_nodes()
        scheduled, scope = await state.kube.list_scheduled_pods()
        specs = [deployment_spec(o) for o in deployments]
        gpu_names = {s.resources.gpu_resource_name for s in specs if s is not None}
        nodes = node_gpus(node_list, scheduled, gpu_names)
    except ApiException as exc:
        errors.append(f"cannot read nodes or pods for GPU capacity: {exc.status} {exc.reason}")
    except TRANSPORT_ERRORS as exc:
        errors.append(f"the Kubernetes API is unreachable: {exc.__class__.__name__}")
    return {
        "object": "status",
        "namespace": state.namespace,
        "synced": state.synced,
        "deployments": list(await asyncio.gather(*(_deployment_entry(state, o, pods) for o in deployments))),
        "nodes": nodes,
        "gpu_requested_scope": scope,
        "errors": errors,
    }
