from tts_operator.autoscale import Inputs, Load, Memory, decide, merge, parse_router_metrics

NOW = 1_000_000.0


def inputs(**kw):
    base = dict(
        desired=1,
        min_replicas=0,
        max_replicas=4,
        target=4,
        idle_seconds=60,
        ready=1,
        pods=1,
        ready_since=NOW - 3600,
        last_activity=None,
        load=Load(),
        now=NOW,
    )
    base.update(kw)
    return Inputs(**base)


def test_idle_past_the_window_scales_to_min():
    d = decide(inputs(last_activity=NOW - 61), Memory())
    assert (d.replicas, d.reason) == (0, "idle")
    d = decide(inputs(last_activity=NOW - 61, min_replicas=1, desired=2, ready=2, pods=2), Memory())
    assert (d.replicas, d.reason) == (1, "idle")


def test_not_idle_inside_the_window_or_while_busy():
    assert not decide(inputs(last_activity=NOW - 59), Memory()).changed
    assert not decide(inputs(last_activity=NOW - 600, load=Load(inflight=1)), Memory()).changed
    assert not decide(inputs(last_activity=NOW - 600, load=Load(queued=1)), Memory()).changed


def test_idle_window_counts_from_ready_when_later_than_last_request():
    # became Ready 30 s ago after a long sleep: the window starts then
    assert not decide(inputs(last_activity=NOW - 3600, ready_since=NOW - 30), Memory()).changed


def test_the_routers_last_request_counts_as_activity():
    d = decide(inputs(last_activity=NOW - 600, load=Load(last_request=NOW - 10)), Memory())
    assert not d.changed
    assert d.last_activity == NOW - 10


def test_never_scales_down_while_pods_are_pending_or_loading():
    assert not decide(inputs(last_activity=NOW - 600, ready=0, pods=1), Memory()).changed
    assert not decide(inputs(last_activity=NOW - 600, desired=2, ready=1, pods=2), Memory()).changed


def test_no_router_data_means_no_guessing():
    assert not decide(inputs(last_activity=NOW - 600, load=None), Memory()).changed


def test_bounds_pull_manual_scale_back_in():
    d = decide(inputs(desired=0, min_replicas=1), Memory())
    assert (d.replicas, d.reason) == (1, "bounds")
    # inside the bounds a manual scale is left alone
    assert not decide(inputs(desired=3, ready=3, pods=3, load=Load(inflight=9)), Memory()).changed


def test_scale_up_needs_two_consecutive_busy_periods():
    busy = inputs(load=Load(inflight=6, queued=4))  # 10 for 1 ready replica at target 4
    first = decide(busy, Memory())
    assert not first.changed and first.memory.above_since == NOW
    second = decide(inputs(load=Load(inflight=6, queued=4), now=NOW + 5), first.memory)
    assert (second.replicas, second.reason) == (3, "load-up")
    # a dip resets the count
    dip = decide(inputs(load=Load(inflight=1), now=NOW + 5), first.memory)
    assert dip.memory.above_since is None


def test_scale_up_capped_at_max():
    mem = Memory(above_since=NOW - 5)
    d = decide(inputs(load=Load(inflight=100)), mem)
    assert d.replicas == 4


def test_scale_down_on_low_load_only_after_a_whole_window():
    low = inputs(desired=3, ready=3, pods=3, min_replicas=1, load=Load(inflight=1, last_request=NOW))
    first = decide(low, Memory())
    assert not first.changed and first.memory.below_since == NOW
    later = decide(
        inputs(desired=3, ready=3, pods=3, min_replicas=1, load=Load(inflight=1, last_request=NOW), now=NOW + 61),
        first.memory,
    )
    assert (later.replicas, later.reason) == (1, "load-down")


def test_zero_with_waiting_requests_wakes_once_the_load_was_scraped_at_zero():
    at_zero = dict(desired=0, ready=0, pods=0, load=Load(queued=2))
    # first seen at zero: the load may predate the sleep, so nothing happens yet
    first = decide(inputs(**at_zero, load_taken_at=NOW - 1), Memory())
    assert not first.changed and first.memory.zero_since == NOW
    # a scrape taken after that still shows requests waiting: wake
    d = decide(inputs(**at_zero, now=NOW + 5, load_taken_at=NOW + 4), first.memory)
    assert (d.replicas, d.reason) == (1, "wake")
    assert not decide(inputs(desired=0, ready=0, pods=0, load_taken_at=NOW + 4), first.memory).changed


def test_stale_load_does_not_undo_a_sleep():
    # an admin put the model to sleep right after a request; the last scrape still counts it
    memory = Memory()
    for t in range(0, 4):
        d = decide(
            inputs(desired=0, ready=0, pods=1, load=Load(inflight=1), now=NOW + t, load_taken_at=NOW - 2), memory
        )
        assert not d.changed, t
        memory = d.memory
    # the next scrape sees nobody waiting: it stays asleep
    d = decide(inputs(desired=0, ready=0, pods=0, load=Load(), now=NOW + 5, load_taken_at=NOW + 5), memory)
    assert not d.changed


METRICS = """
# HELP kubetts_router_inflight_requests x
# TYPE kubetts_router_inflight_requests gauge
kubetts_router_inflight_requests{namespace="tts",deployment="joe"} 2.0
kubetts_router_inflight_requests{namespace="tts",deployment="amy"} 0.0
# TYPE kubetts_router_queued_requests gauge
kubetts_router_queued_requests{namespace="tts",deployment="joe"} 1.0
# TYPE kubetts_router_last_request_timestamp_seconds gauge
kubetts_router_last_request_timestamp_seconds{namespace="tts",deployment="joe"} 1.7e9
kubetts_router_last_request_timestamp_seconds{namespace="tts",deployment="amy"} 0
"""


def test_parse_and_merge_router_metrics():
    one = parse_router_metrics(METRICS)
    assert one[("tts", "joe")] == Load(inflight=2, queued=1, last_request=1.7e9)
    assert one[("tts", "amy")] == Load()
    other = {("tts", "joe"): Load(inflight=1, last_request=1.8e9)}
    total = merge([one, other])
    assert total[("tts", "joe")] == Load(inflight=3, queued=1, last_request=1.8e9)
