"""The hold queue: FIFO grants, the bound, timeouts, cancellation, retries elsewhere, metrics."""

import asyncio

import pytest
from tts_api.dispatch import Dispatcher, ModelGone, QueueFull
from tts_api.metrics import RouterMetrics
from tts_api.routing import Endpoint, LeastOutstanding


class Pods:
    """Endpoints per model that a test changes as pods come and go."""

    def __init__(self) -> None:
        self.by_model: dict[str, list[Endpoint]] = {}

    def __call__(self, model: str) -> list[Endpoint]:
        return self.by_model.get(model, [])


def make(cap: int = 1, queue: int = 3) -> tuple[Dispatcher, Pods]:
    pods = Pods()
    return Dispatcher(LeastOutstanding(cap), pods, queue, wall_clock=lambda: 1700000000.0), pods


A = Endpoint("a", "10.0.0.1", 8000)
B = Endpoint("b", "10.0.0.2", 8000)


async def test_granted_at_once_when_a_pod_has_a_free_slot():
    d, pods = make()
    pods.by_model["joe"] = [A]
    t = d.enter("joe")
    assert t.granted and await d.wait(t, 1) == A
    assert d.inflight("joe") == 1 and d.queued("joe") == 0


async def test_waiters_are_granted_in_arrival_order_as_slots_free():
    d, pods = make(cap=1, queue=5)
    pods.by_model["joe"] = [A]
    first = d.enter("joe")
    waiting = [d.enter("joe") for _ in range(3)]
    assert [d.position(t) for t in waiting] == [1, 2, 3]
    order = []

    async def waiter(i, t):
        await d.wait(t, 5)
        order.append(i)

    tasks = [asyncio.create_task(waiter(i, t)) for i, t in enumerate(waiting)]
    await asyncio.sleep(0)
    d.finish(first)
    for t in waiting:
        await asyncio.sleep(0.01)
        d.finish(t)
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]
    assert d.inflight("joe") == 0 and d.queued("joe") == 0
    assert d.last_finished["joe"] == 1700000000.0


async def test_a_new_arrival_does_not_jump_the_queue():
    d, pods = make(cap=1)
    queued = d.enter("joe")  # no pods yet: waits
    pods.by_model["joe"] = [A]
    late = d.enter("joe")  # a slot is free now, but someone waits already
    assert not late.granted and d.position(late) == 2
    d.dispatch("joe")
    assert queued.granted and not late.granted


async def test_queue_bound_raises_queue_full():
    d, _ = make(queue=2)
    d.enter("joe")
    d.enter("joe")
    with pytest.raises(QueueFull):
        d.enter("joe")
    assert d.queued("joe") == 2
    # another model has its own queue
    d.enter("kokoro")


async def test_timeout_leaves_the_queue():
    d, _ = make()
    t = d.enter("joe")
    with pytest.raises(TimeoutError):
        await d.wait(t, 0.05)
    assert d.queued("joe") == 0


async def test_a_pod_becoming_ready_grants_the_waiters():
    d, pods = make(cap=2)
    tickets = [d.enter("joe") for _ in range(3)]
    pods.by_model["joe"] = [A]
    d.dispatch_all()
    assert [t.granted for t in tickets] == [True, True, False]
    pods.by_model["joe"] = [A, B]
    d.dispatch_all()
    assert tickets[2].endpoint == B


async def test_cancelled_waiter_that_was_just_granted_gives_the_slot_back():
    d, pods = make(cap=1)
    t1 = d.enter("joe")
    t2 = d.enter("joe")
    task = asyncio.create_task(d.wait(t1, 5))
    await asyncio.sleep(0)
    pods.by_model["joe"] = [A]
    d.dispatch("joe")  # t1 granted, but its client is gone before it resumes
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert t2.granted and t2.endpoint == A  # the slot went to the next in line
    assert d.inflight("joe") == 1


async def test_retry_elsewhere_excludes_the_refusing_pod_and_goes_first():
    d, pods = make(cap=1, queue=5)
    pods.by_model["joe"] = [A]
    t = d.enter("joe")
    other = d.enter("joe")
    d.retry_elsewhere(t)  # A refused: t must not get A again
    assert not t.granted and t.exclude == {"a": 0}
    assert other.granted and other.endpoint == A  # the freed slot serves the next one
    pods.by_model["joe"] = [A, B]
    d.dispatch("joe")
    assert t.endpoint == B


async def test_a_pod_whose_container_restarted_is_no_longer_excluded():
    """Seen in the TtsJob disruption test: the only pod of a model was OOM-killed and restarted in
    place; the requests it had closed unanswered waited for another pod that never came."""
    d, pods = make(cap=1, queue=5)
    pods.by_model["joe"] = [A]
    t = d.enter("joe")
    d.retry_elsewhere(t)
    d.dispatch("joe")
    assert not t.granted  # the same server: not again
    restarted = Endpoint("a", "10.0.0.1", 8000, restarts=1)
    assert restarted == A  # the same endpoint for the balancer's counts
    pods.by_model["joe"] = [restarted]
    d.dispatch("joe")
    assert t.granted and t.endpoint == restarted


async def test_fail_all_answers_waiters_when_the_model_is_gone():
    d, _ = make()
    t = d.enter("joe")
    d.fail_all("joe", ModelGone("joe"))
    with pytest.raises(ModelGone):
        await d.wait(t, 1)


async def test_finish_is_idempotent_and_counts_once():
    d, pods = make(cap=1)
    pods.by_model["joe"] = [A]
    t = d.enter("joe")
    d.finish(t)
    d.finish(t)
    assert d.inflight("joe") == 0 and d.balancer.outstanding == {}


async def test_activity_gauges_render_for_every_deployment():
    d, pods = make(cap=1)
    pods.by_model["joe"] = [A]
    d.enter("joe")
    d.enter("joe")
    done = d.enter("other")
    d.finish(done)
    text = RouterMetrics("kube-tts", d, lambda: ["joe", "idle"]).render()[0].decode()
    assert 'kubetts_router_inflight_requests{deployment="joe",namespace="kube-tts"} 1.0' in text
    assert 'kubetts_router_queued_requests{deployment="joe",namespace="kube-tts"} 1.0' in text
    assert 'kubetts_router_queued_requests{deployment="idle",namespace="kube-tts"} 0.0' in text
    assert 'kubetts_router_last_request_timestamp_seconds{deployment="other",namespace="kube-tts"} 1.7e+09' in text
    assert 'kubetts_router_last_request_timestamp_seconds{deployment="idle"' not in text
