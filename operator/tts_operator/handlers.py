"""The operator's Kopf wiring: startup builds the one :class:`~.runtime.Runtime` in ``memo``; importing
this module registers every handler. Each concern has its module:

- ``reconcile``: TtsDeployment spec → children (apply, restore drift);
- ``refresh``: TtsDeployment status from its child Deployment and pods;
- ``autoscaler``: the router scrape and the replicas decisions;
- ``voice_checks``: TtsVoice validation;
- ``ttsjobs``: TtsJob plan, renderer Job, status and files.

Every Kubernetes call goes through ``kube.Kube``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import kopf
from kubernetes_asyncio import client, config
from tts_crds import names

from . import autoscaler, kube, reconcile, refresh, ttsjobs, voice_checks
from .runtime import Debouncer, Runtime, runtime_of
from .settings import OperatorSettings

__all__ = ["autoscaler", "reconcile", "refresh", "ttsjobs", "voice_checks"]  # imported for their handlers

log = logging.getLogger("tts_operator")


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # ``memo.settings`` is the OperatorSettings that ``__main__`` built once and handed to Kopf
    ours: OperatorSettings = memo.settings
    # keep Kopf's bookkeeping in annotations under our group, not in .status
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=names.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=names.GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 120
    settings.networking.request_timeout = 30
    settings.batching.worker_limit = 64
    if ours.namespaces:
        # Namespaced RBAC: no cluster-wide listing of namespaces or CRDs. The namespaces are the
        # configured ones and the CRDs are known to exist (the chart installs them).
        settings.scanning.disabled = True
    try:
        config.load_incluster_config()
    except config.ConfigException:
        await config.load_kube_config()
    api = client.ApiClient()
    rt = Runtime(settings=ours, api=api, kube=kube.Kube(api), http=aiohttp.ClientSession())
    rt.refresher = Debouncer(lambda ns, name: refresh.refresh_status(rt, ns, name))
    rt.tasks = [
        asyncio.create_task(autoscaler.scrape_loop(rt)),
        asyncio.create_task(autoscaler.autoscale_loop(rt)),
        asyncio.create_task(voice_checks.voice_loop(rt)),
    ]
    memo.runtime = rt


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    await runtime_of(memo).close()
