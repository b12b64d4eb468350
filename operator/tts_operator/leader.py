"""Leader election with a coordination.k8s.io Lease, as controller-runtime does it.

Only the holder reconciles; standby replicas wait. The holder renews every third of the lease
duration; if it cannot renew before the lease would expire it stops reconciling and stands by
again in the same process (ADR 0035). On a clean shutdown it releases the lease so a successor
starts at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

log = logging.getLogger("tts_operator.leader")

# what a call to an apiserver that is away (restarting, unreachable) raises
UNREACHABLE = (TimeoutError, OSError, aiohttp.ClientError)


class LostLeadership(Exception):
    pass


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def identity() -> str:
    return f"{socket.gethostname()}_{os.getpid()}"


class LeaseLock:
    def __init__(self, api: client.ApiClient, namespace: str, name: str, duration: int, who: str | None = None):
        self.coord = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name
        self.duration = duration
        self.identity = who or identity()
        # how often a standby looks at the lease again
        self.retry_period = max(1.0, duration / 5)

    def _body(self, lease: client.V1Lease | None, acquire: bool) -> client.V1Lease:
        now = _now()
        transitions = 0
        acquired = now
        if lease is not None and lease.spec is not None:
            transitions = lease.spec.lease_transitions or 0
            if lease.spec.holder_identity == self.identity and lease.spec.acquire_time:
                acquired = lease.spec.acquire_time
            elif acquire:
                transitions += 1
        meta = client.V1ObjectMeta(name=self.name, namespace=self.namespace)
        if lease is not None and lease.metadata is not None:
            meta.resource_version = lease.metadata.resource_version
        spec = client.V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=self.duration,
            acquire_time=acquired,
            renew_time=now,
            lease_transitions=transitions,
        )
        return client.V1Lease(metadata=meta, spec=spec)

    async def try_acquire(self) -> bool:
        """One attempt: True if we hold the lease afterwards."""
        try:
            lease = await self.coord.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            try:
                await self.coord.create_namespaced_lease(self.namespace, self._body(None, True))
                return True
            except ApiException as create_exc:
                if create_exc.status == 409:
                    return False
                raise
        spec = lease.spec
        holder = spec.holder_identity if spec else None
        if holder and holder != self.identity and spec is not None and spec.renew_time is not None:
            expires = spec.renew_time + dt.timedelta(seconds=spec.lease_duration_seconds or self.duration)
            if expires > _now():
                return False
        try:
            await self.coord.replace_namespaced_lease(self.name, self.namespace, self._body(lease, True))
            return True
        except ApiException as exc:
            if exc.status == 409:  # someone else updated it first
                return False
            raise

    async def acquire(self) -> None:
        """Until this process holds the lease; an apiserver that is away only delays it."""
        waited = False
        while True:
            try:
                if await self.try_acquire():
                    break
                if not waited:
                    log.info("waiting to become leader (lease %s/%s is held)", self.namespace, self.name)
                    waited = True
            except ApiException as exc:
                log.warning("cannot read or take the lease: %s %s", exc.status, exc.reason)
            except UNREACHABLE as exc:
                log.warning("cannot read or take the lease: %s", exc or exc.__class__.__name__)
            await asyncio.sleep(self.retry_period)
        log.info("became leader as %s", self.identity)

    async def hold(self) -> None:
        """Renew until renewal fails for a whole lease duration; then raise LostLeadership."""
        period = self.duration / 3
        last_ok = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(period)
            try:
                if await self.try_acquire():
                    last_ok = asyncio.get_running_loop().time()
                    continue
                raise LostLeadership(f"lease {self.namespace}/{self.name} was taken by another operator")
            except ApiException as exc:
                log.warning("could not renew the lease: %s %s", exc.status, exc.reason)
            except UNREACHABLE as exc:
                log.warning("could not renew the lease: %s", exc or exc.__class__.__name__)
            if asyncio.get_running_loop().time() - last_ok > self.duration:
                raise LostLeadership("could not renew the lease in time")

    async def release(self) -> None:
        try:
            lease = await self.coord.read_namespaced_lease(self.name, self.namespace)
            if lease.spec and lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = None  # type: ignore[assignment]
                lease.spec.renew_time = None  # type: ignore[assignment]
                await self.coord.replace_namespaced_lease(self.name, self.namespace, lease)
                log.info("released the lease")
        except (ApiException, *UNREACHABLE) as exc:
            log.warning("could not release the lease: %s", exc)
