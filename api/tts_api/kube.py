"""Everything the router asks of the Kubernetes API.

- ``Cache``: objects of one kind kept current by list+watch. Each cache lists, then watches from
  the list's resourceVersion; when the watch expires (410) or the apiserver goes away it re-lists,
  so a restart of the apiserver loses nothing (the last known objects keep serving meanwhile).
- ``Kube``: the few writes and reads the router makes — the scale subresource (0 -> 1 and sleep),
  voices (a TtsVoice plus the ConfigMap holding its clip), a voice's clip, nodes and pods for GPU
  status. Its methods raise ``ApiException``; ``api_error`` turns one into the client's answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException
from tts_crds import names, objects
from tts_crds.http_errors import ApiError

from . import activation
from .jobs import owner_reference

log = logging.getLogger("tts_api.kube")
JSON = dict[str, Any]

# transport failures talking to the apiserver (it restarts, the network blips)
TRANSPORT_ERRORS = (TimeoutError, aiohttp.ClientError, OSError)


async def api_client() -> client.ApiClient:
    """In-cluster service-account credentials, else the kubeconfig (local development)."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        await config.load_kube_config()
    return client.ApiClient()


class _RawWatch(watch.Watch):
    """A watch that leaves objects as dicts: the caches use ``raw_object`` only, so skip deserialising."""

    def get_return_type(self, func: object) -> str | None:  # type: ignore[override]
        return None


class Cache:
    """Objects of one kind, by name, kept current by list+watch."""

    def __init__(self, kind: str, list_fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> None:
        self.kind = kind
        self._list = list_fn
        self._args = args
        self._kwargs = kwargs
        self.objects: dict[str, JSON] = {}
        self.synced = asyncio.Event()
        self.changed = asyncio.Condition()
        self.relists = 0

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def wait_changed(self, seconds: float) -> None:
        """Until the next change, or ``seconds`` at most."""
        async with self.changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), seconds)

    async def run(self) -> None:
        """List, then watch from the list; on any failure list again (the task never dies)."""
        while True:
            try:
                listing = await _json(
                    self._list(*self._args, **self._kwargs, _preload_content=False, _request_timeout=60)
                )
                rv = listing["metadata"]["resourceVersion"]
                self.objects = {o["metadata"]["name"]: o for o in listing.get("items", [])}
                self.relists += 1
                log.info("listed %d %s at resourceVersion %s", len(self.objects), self.kind, rv)
                self.synced.set()
                await self._notify()
                while True:
                    w = _RawWatch()
                    async with w.stream(
                        self._list,
                        *self._args,
                        **self._kwargs,
                        resource_version=rv,
                        allow_watch_bookmarks=True,
                        timeout_seconds=240,
                        _request_timeout=300,
                    ) as stream:
                        async for event in stream:
                            obj = event["raw_object"]
                            rv = obj.get("metadata", {}).get("resourceVersion", rv)
                            if event["type"] == "BOOKMARK":
                                continue
                            name = obj["metadata"]["name"]
                            if event["type"] == "DELETED":
                                self.objects.pop(name, None)
                            else:
                                self.objects[name] = obj
                            await self._notify()
            except asyncio.CancelledError:
                raise
            except ApiException as exc:
                if exc.status == 410:
                    log.info("%s watch expired; re-listing", self.kind)
                    continue
                log.warning("%s list/watch failed: %s %s; re-listing", self.kind, exc.status, exc.reason)
                await asyncio.sleep(1)
            except TRANSPORT_ERRORS as exc:
                log.warning("%s watch lost (%s); re-listing", self.kind, exc.__class__.__name__)
                await asyncio.sleep(1)
            except Exception:
                # an answer of a shape we did not expect: never let the cache die with it
                log.exception("%s list/watch broke; re-listing", self.kind)
                await asyncio.sleep(1)


def api_error(exc: BaseException, what: str) -> ApiError:
    """The client's answer when a Kubernetes call about ``what`` failed."""
    if isinstance(exc, ApiException):
        if exc.status == 404:
            return ApiError(404, f"{what} does not exist", "not_found")
        if exc.status == 409:
            return ApiError(409, f"{what} already exists or changed meanwhile", "conflict")
        if exc.status in (400, 422):
            return ApiError(400, f"{what} is invalid: {_message(exc)}", "invalid_value")
        if exc.status in (401, 403):
            log.error("the router is not allowed to act on %s (%s): check its RBAC", what, exc.status)
            return ApiError(503, f"the router lacks permission for {what}; see its RBAC", "kubernetes_forbidden")
        return ApiError(503, f"the Kubernetes API failed on {what} ({exc.status})", "kubernetes_unavailable")
    message = f"the Kubernetes API is unreachable ({exc.__class__.__name__})"
    return ApiError(503, message, "kubernetes_unavailable", None, {"Retry-After": "2"})


@contextlib.contextmanager
def answering(what: str, special: dict[int, ApiError] | None = None) -> Iterator[None]:
    """Turn a failed Kubernetes call about ``what`` into the client's answer (``api_error``), or
    into ``special[status]`` where the caller has a better one (a 404 that means "no such voice")."""
    try:
        yield
    except ApiException as exc:
        if special and exc.status in special:
            raise special[exc.status] from exc
        raise api_error(exc, what) from exc
    except TRANSPORT_ERRORS as exc:
        raise api_error(exc, what) from exc


def _message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or b"{}").get("message", exc.reason))
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)


async def _json(call: Awaitable[Any]) -> JSON:
    """The body of a call made with ``_preload_content=False`` as JSON; ``ApiException`` unless 2xx
    (the client raises for errors only when it preloads the content itself)."""
    resp = await call
    data = await resp.read()
    if not 200 <= resp.status <= 299:
        exc = ApiException(status=resp.status, reason=resp.reason)
        exc.body = data
        raise exc
    body: JSON = json.loads(data)
    return body


class Kube:
    """The router's reads and writes beyond the caches, all in its own namespace (plus nodes)."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.objects = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)

    # --- the scale subresource ------------------------------------------------------------------

    async def get_replicas(self, name: str) -> tuple[int, str]:
        body = await _json(
            self.objects.get_namespaced_custom_object_scale(
                names.GROUP, names.VERSION, self.namespace, names.DEPLOYMENT_PLURAL, name, _preload_content=False
            )
        )
        # autoscaling/v1 Scale omits replicas when it is 0
        return int(body.get("spec", {}).get("replicas") or 0), body["metadata"]["resourceVersion"]

    async def set_replicas(self, name: str, replicas: int, resource_version: str | None = None) -> None:
        patch: JSON = {"spec": {"replicas": replicas}}
        if resource_version:
            # a precondition: the apiserver answers 409 if the object changed since we read it
            patch["metadata"] = {"resourceVersion": resource_version}
        await self.objects.patch_namespaced_custom_object_scale(
            names.GROUP,
            names.VERSION,
            self.namespace,
            names.DEPLOYMENT_PLURAL,
            name,
            patch,
            _content_type="application/merge-patch+json",
        )  # type: ignore[call-arg]

    async def wake(self, name: str) -> str:
        """spec.replicas 0 -> 1, and only from 0 (the operator owns every other change)."""
        try:
            replicas, rv = await self.get_replicas(name)
            if replicas != 0:
                return activation.NOT_AT_ZERO
            await self.set_replicas(name, 1, rv)
        except ApiException as exc:
            if exc.status == 409:
                return activation.CONFLICT
            if exc.status == 404:
                return activation.GONE
            log.error("cannot wake %s: %s %s", name, exc.status, exc.reason)
            return activation.FAILED
        except TRANSPORT_ERRORS as exc:
            log.warning("cannot wake %s: %s", name, exc.__class__.__name__)
            return activation.FAILED
        return activation.SCALED

    # --- voices ---------------------------------------------------------------------------------

    async def create_voice(self, voice: JSON, configmap: JSON) -> JSON:
        """The TtsVoice, then its ConfigMap owned by it (deleting the voice deletes the clip)."""
        created = await self.objects.create_namespaced_custom_object(
            names.GROUP, names.VERSION, self.namespace, names.VOICE_PLURAL, voice
        )
        meta = created["metadata"]
        configmap["metadata"]["ownerReferences"] = [
            {
                "apiVersion": names.API_VERSION,
                "kind": names.VOICE_KIND,
                "name": meta["name"],
                "uid": meta["uid"],
                "blockOwnerDeletion": False,
            }
        ]
        try:
            await self.core.create_namespaced_config_map(self.namespace, configmap)  # type: ignore[arg-type]
        except BaseException:
            # no voice without its clip
            await asyncio.shield(self._delete_voice_quietly(meta["name"]))
            raise
        result: JSON = created
        return result

    async def _delete_voice_quietly(self, name: str) -> None:
        try:
            await self.delete_voice(name)
        except (ApiException, *TRANSPORT_ERRORS) as exc:
            log.warning("could not remove voice %s after a failed create: %s", name, exc)

    async def delete_voice(self, name: str) -> None:
        await self.objects.delete_namespaced_custom_object(
            names.GROUP,
            names.VERSION,
            self.namespace,
            names.VOICE_PLURAL,
            name,
            propagation_policy="Background",
        )

    async def read_key(self, kind: str, name: str, key: str) -> bytes | None:
        """Bytes of ``key`` in a ConfigMap (binaryData or data) or a Secret; None if the key is absent."""
        if kind == "configmap":
            obj = await _json(self.core.read_namespaced_config_map(name, self.namespace, _preload_content=False))
            return objects.key_value(obj, key, secret=False)
        obj = await _json(self.core.read_namespaced_secret(name, self.namespace, _preload_content=False))
        return objects.key_value(obj, key, secret=True)

    # --- productions (TtsJobs) ---------------------------------------------------------------------

    async def create_job(self, job: JSON, text: JSON | None = None) -> JSON:
        """The TtsJob; with an uploaded ``text``, its ConfigMap first (so the operator never sees a job
        whose text is missing), then the ConfigMap's owner reference to the job (so deleting the job
        deletes the text). A failure part-way removes what was made."""
        if text is not None:
            await self.core.create_namespaced_config_map(self.namespace, text)  # type: ignore[arg-type]
        try:
            created: JSON = await self.objects.create_namespaced_custom_object(
                names.GROUP, names.VERSION, self.namespace, names.JOB_PLURAL, job
            )
        except BaseException:
            if text is not None:
                await asyncio.shield(self._delete_configmap_quietly(text["metadata"]["name"]))
            raise
        if text is not None:
            owner = {"metadata": {"ownerReferences": [owner_reference(created)]}}
            try:
                await self.core.patch_namespaced_config_map(
                    text["metadata"]["name"],
                    self.namespace,
                    owner,
                    _content_type="application/merge-patch+json",
                )  # type: ignore[call-arg]
            except BaseException:
                # no job whose text would outlive it
                await asyncio.shield(self._delete_job_and_text_quietly(created["metadata"]["name"], text))
                raise
        return created

    async def _delete_configmap_quietly(self, name: str) -> None:
        try:
            await self.core.delete_namespaced_config_map(name, self.namespace)
        except (ApiException, *TRANSPORT_ERRORS) as exc:
            log.warning("could not remove ConfigMap %s after a failed create: %s", name, exc)

    async def _delete_job_and_text_quietly(self, name: str, text: JSON) -> None:
        try:
            await self.delete_job(name)
        except (ApiException, *TRANSPORT_ERRORS) as exc:
            log.warning("could not remove TtsJob %s after a failed create: %s", name, exc)
        await self._delete_configmap_quietly(text["metadata"]["name"])

    async def get_job(self, name: str) -> JSON:
        return await _json(
            self.objects.get_namespaced_custom_object(
                names.GROUP, names.VERSION, self.namespace, names.JOB_PLURAL, name, _preload_content=False
            )
        )

    async def list_jobs(self) -> list[JSON]:
        listing = await _json(
            self.objects.list_namespaced_custom_object(
                names.GROUP, names.VERSION, self.namespace, names.JOB_PLURAL, _preload_content=False
            )
        )
        items: list[JSON] = listing.get("items", [])
        return items

    async def delete_job(self, name: str) -> None:
        """Delete the TtsJob; its Job, plan and text go with it (owner references)."""
        await self.objects.delete_namespaced_custom_object(
            names.GROUP,
            names.VERSION,
            self.namespace,
            names.JOB_PLURAL,
            name,
            propagation_policy="Background",
        )

    # --- cluster capacity -----------------------------------------------------------------------

    async def list_nodes(self) -> list[JSON]:
        items: list[JSON] = (await _json(self.core.list_node(_preload_content=False)))["items"]
        return items

    async def list_scheduled_pods(self) -> tuple[list[JSON], str]:
        """Pods that hold node resources: cluster-wide when RBAC allows, else this namespace only."""
        selector = "status.phase!=Succeeded,status.phase!=Failed"
        try:
            listing = await _json(
                self.core.list_pod_for_all_namespaces(field_selector=selector, _preload_content=False)
            )
            scope = "cluster"
        except ApiException as exc:
            if exc.status != 403:
                raise
            listing = await _json(
                self.core.list_namespaced_pod(self.namespace, field_selector=selector, _preload_content=False)
            )
            scope = "namespace"
        items: list[JSON] = listing["items"]
        return items, scope
