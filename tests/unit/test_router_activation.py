"""Scale-from-zero: the waker patches 0 -> 1 while requests wait, and only then."""

import asyncio

import pytest
from tts_api import activation
from tts_api.activation import Activator
from tts_api.dispatch import Dispatcher, ModelGone
from tts_api.routing import Endpoint, LeastOutstanding


class World:
    def __init__(self, replicas: int | None = 0) -> None:
        self.replicas = replicas
        self.endpoints: list[Endpoint] = []
        self.calls = 0
        self.results: list[str] = []

    async def scale_up(self, model: str) -> str:
        self.calls += 1
        if self.results:
            return self.results.pop(0)
        if self.replicas == 0:
            self.replicas = 1
            return activation.SCALED
        return activation.NOT_AT_ZERO


def setup(world: World, clock=None) -> tuple[Dispatcher, Activator, list]:
    d = Dispatcher(LeastOutstanding(4), lambda m: world.endpoints, 10)
    recorded: list = []
    a = Activator(
        d,
        lambda m: world.endpoints,
        lambda m: world.replicas,
        world.scale_up,
        record=lambda m, r: recorded.append((m, r)),
        poll=0.01,
        repatch_after=0.05,
    )
    return d, a, recorded


async def test_wakes_a_model_at_zero_once_and_stops_when_a_pod_is_ready():
    world = World(replicas=0)
    d, a, recorded = setup(world)
    t = d.enter("joe")
    a.kick("joe")
    a.kick("joe")  # a second request does not start a second waker
    await asyncio.sleep(0.03)
    assert world.calls == 1 and recorded == [("joe", "scaled")]
    world.endpoints = [Endpoint("p", "10.0.0.1", 8000)]
    d.dispatch("joe")
    assert (await d.wait(t, 1)).pod == "p"
    await asyncio.sleep(0.03)
    assert not a.waking("joe")


async def test_does_not_patch_when_replicas_are_already_up():
    world = World(replicas=2)  # pods are starting: nothing to do but wait
    d, a, _ = setup(world)
    d.enter("joe")
    a.kick("joe")
    await asyncio.sleep(0.05)
    assert world.calls == 0 and a.waking("joe")
    await a.close()


async def test_patches_again_if_put_back_to_zero_and_at_once_after_a_conflict():
    world = World(replicas=0)
    world.results = [activation.CONFLICT, activation.SCALED]
    d, a, recorded = setup(world)
    d.enter("joe")
    a.kick("joe")
    await asyncio.sleep(0.03)
    assert [r for _, r in recorded[:2]] == ["conflict", "scaled"]  # conflict: tried again without waiting
    world.replicas = 0  # someone scaled it back down while requests wait
    await asyncio.sleep(0.1)
    assert world.calls >= 3
    await a.close()


async def test_waiters_fail_when_the_deployment_is_deleted():
    world = World(replicas=None)
    d, a, _ = setup(world)
    t = d.enter("joe")
    a.kick("joe")
    with pytest.raises(ModelGone):
        await d.wait(t, 1)


async def test_no_waker_runs_without_waiters():
    world = World(replicas=0)
    _, a, _ = setup(world)
    a.kick("joe")
    await asyncio.sleep(0.02)
    assert world.calls == 0 and not a.waking("joe")


async def test_a_failed_patch_is_tried_again_soon_not_a_repatch_period_later():
    # the apiserver was away when the first request came: the waker must not sit out a whole period
    world = World(replicas=0)
    world.results = [activation.FAILED, activation.FAILED, activation.SCALED]
    d = Dispatcher(LeastOutstanding(4), lambda m: world.endpoints, 10)
    a = Activator(
        d,
        lambda m: world.endpoints,
        lambda m: world.replicas,
        world.scale_up,
        poll=0.01,
        repatch_after=60,
        retry_failed_after=0.03,
    )
    d.enter("joe")
    a.kick("joe")
    await asyncio.sleep(0.2)
    assert world.calls == 3 and world.replicas == 0  # the third answer was "scaled" (from the fake)
    await asyncio.sleep(0.1)
    assert world.calls == 3  # scaled: the next patch waits a whole re-patch period
    await a.close()


async def test_a_starting_pod_that_answers_its_probe_gets_the_waiting_requests():
    world = World(replicas=1)  # pods are starting, none Ready in Kubernetes' eyes
    probed: list[str] = []

    async def probe(model: str) -> bool:
        probed.append(model)
        if len(probed) < 3:
            return False  # still loading
        world.endpoints = [Endpoint("p", "10.0.0.1", 8000)]  # what admitting it early amounts to
        return True

    d = Dispatcher(LeastOutstanding(4), lambda m: world.endpoints, 10)
    a = Activator(d, lambda m: world.endpoints, lambda m: world.replicas, world.scale_up, probe=probe, poll=0.01)
    t = d.enter("joe")
    a.kick("joe")
    assert (await d.wait(t, 1)).pod == "p"
    assert probed == ["joe"] * 3 and world.calls == 0
    await asyncio.sleep(0.03)
    assert not a.waking("joe")


async def test_prewake_raises_a_model_at_zero_once_without_a_request_and_leaves_others_alone():
    world = World(replicas=0)
    _, a, recorded = setup(world)
    a.prewake("joe")
    a.prewake("joe")  # a second script before it is up: one patch
    await asyncio.sleep(0.03)
    assert world.calls == 1 and recorded == [("joe", "scaled")] and world.replicas == 1
    a.prewake("joe")  # up now: nothing to do
    await asyncio.sleep(0.01)
    assert world.calls == 1 and not a.waking("joe")  # nothing waits, so no waker polls for it
    awake = World(replicas=2)
    _, b, _ = setup(awake)
    b.prewake("joe")
    await asyncio.sleep(0.01)
    assert awake.calls == 0
    await a.close()
