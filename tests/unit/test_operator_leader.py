"""Leader election when the apiserver goes away: the lock waits instead of crashing, and a leader
that could not renew in time stops reconciling and stands by to lead again (ADR 0035)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from kubernetes_asyncio.client.exceptions import ApiException
from tts_operator import __main__ as entry
from tts_operator.leader import LeaseLock, LostLeadership
from tts_operator.settings import OperatorSettings


def lock_with(answers: list) -> LeaseLock:
    """A LeaseLock whose attempts return or raise ``answers`` in turn (then True)."""
    lock = LeaseLock.__new__(LeaseLock)
    lock.namespace, lock.name, lock.duration, lock.identity = "kube-tts", "kube-tts-operator", 0.15, "me_1"
    lock.retry_period = 0.01
    lock.attempts = 0  # type: ignore[attr-defined]

    async def try_acquire() -> bool:
        lock.attempts += 1  # type: ignore[attr-defined]
        answer = answers.pop(0) if answers else True
        if isinstance(answer, BaseException):
            raise answer
        return bool(answer)

    lock.try_acquire = try_acquire  # type: ignore[method-assign]
    return lock


async def test_acquire_waits_through_an_apiserver_that_is_away():
    refused = aiohttp.ClientConnectorError(
        aiohttp.client_reqrep.ConnectionKey("127.0.0.1", 6443, True, True, None, None, None), OSError(111, "refused")
    )
    lock = lock_with([refused, aiohttp.ServerDisconnectedError(), ApiException(503), TimeoutError(), False])
    await lock.acquire()
    assert lock.attempts == 6  # type: ignore[attr-defined]


async def test_hold_gives_up_only_after_a_whole_lease_duration_without_renewal():
    lock = lock_with([True, aiohttp.ServerDisconnectedError(), *[OSError("refused")] * 50])
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(LostLeadership, match="in time"):
        await asyncio.wait_for(lock.hold(), 5)
    # renewals every duration/3: the first succeeded, the failures after it were tolerated until a
    # whole lease duration had passed since that success
    assert lock.attempts >= 3  # type: ignore[attr-defined]
    assert loop.time() - t0 >= lock.duration / 3 + lock.duration


async def test_hold_stops_at_once_when_another_operator_took_the_lease():
    lock = lock_with([True, False])
    with pytest.raises(LostLeadership, match="taken by another"):
        await asyncio.wait_for(lock.hold(), 5)


async def test_a_leader_that_lost_the_lease_stands_by_and_leads_again(monkeypatch: pytest.MonkeyPatch):
    """``_run``: LostLeadership stops Kopf, then the same process takes the lease again and runs a
    fresh Kopf; it exits only when Kopf itself ends."""
    runs: list[str] = []
    kopf_started = []

    class FakeLock:
        def __init__(self, *args, **kwargs) -> None:
            self.holds = 0

        async def acquire(self) -> None:
            runs.append("acquire")

        async def hold(self) -> None:
            self.holds += 1
            if self.holds == 1:
                await asyncio.sleep(0.05)
                raise LostLeadership("could not renew the lease in time")
            await asyncio.sleep(3600)

        async def release(self) -> None:
            runs.append("release")

    async def fake_operator(**kwargs) -> None:
        kopf_started.append(kwargs)
        if len(kopf_started) == 1:
            await asyncio.sleep(3600)  # cancelled when the lease is lost
        # the second run ends by itself (as Kopf does on a stop signal)

    class FakeApi:
        async def __aenter__(self):
            return self

        async def __aexit__(self, *exc) -> None:
            return None

    async def loaded(*args, **kwargs) -> None:
        return None

    monkeypatch.setattr(entry, "LeaseLock", FakeLock)
    monkeypatch.setattr(entry.kopf, "operator", fake_operator)
    monkeypatch.setattr(entry.client, "ApiClient", FakeApi)

    def not_in_a_cluster() -> None:
        raise entry.config.ConfigException("not in a cluster")

    monkeypatch.setattr(entry.config, "load_incluster_config", not_in_a_cluster)
    monkeypatch.setattr(entry.config, "load_kube_config", loaded)
    health = entry.Health()
    code = await asyncio.wait_for(entry._run(OperatorSettings(), health), 5)
    assert code == 0
    assert runs == ["acquire", "acquire", "release"]
    assert len(kopf_started) == 2 and health.role == "leader"
