"""API keys with scopes, key-file rotation, the token bucket, SSE framing, GPU capacity."""

import json

from pydantic import SecretStr
from tts_api import sse
from tts_api.capacity import node_gpus
from tts_api.security import KeyRing, RateLimiter, TokenBucket
from tts_api.settings import RouterSettings

from tests.helpers import sse_events


def test_user_and_admin_keys_have_their_scopes(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("# user keys\nsk-user-1\n\nsk-user-2  # trailing comment\n")
    settings = RouterSettings(api_keys_file=keys, admin_api_keys=SecretStr("sk-admin"))
    ring = KeyRing(settings)
    assert ring.authenticate("sk-user-1").admin is False
    assert ring.authenticate("sk-user-2").admin is False
    assert ring.authenticate("sk-admin").admin is True
    assert ring.authenticate("sk-user") is None and ring.authenticate("") is None
    # the id is a hash: the key itself never appears where ids are logged
    assert "sk-user-1" not in ring.authenticate("sk-user-1").id


def test_rotated_key_file_is_picked_up(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("sk-old\n")
    ring = KeyRing(RouterSettings(api_keys_file=keys), recheck_seconds=0)
    assert ring.authenticate("sk-old")
    keys.write_text("sk-new\n")
    import os

    os.utime(keys, (1, 1))  # a different mtime, as a Secret update gives
    assert ring.authenticate("sk-new") and ring.authenticate("sk-old") is None


def test_token_bucket_allows_a_burst_then_the_rate():
    bucket = TokenBucket(rate=2, burst=3, now=0)
    assert [bucket.take(0) for _ in range(3)] == [0, 0, 0]
    assert bucket.take(0) == 0.5  # one token needs half a second at 2/s
    assert bucket.take(0.5) == 0


def test_rate_limiter_is_per_key_and_says_how_long_to_wait():
    now = [0.0]
    limiter = RateLimiter(rate=1, burst=2, clock=lambda: now[0])
    assert [limiter.check("a") for _ in range(3)] == [0, 0, 1]
    assert limiter.check("b") == 0
    now[0] = 1.0
    assert limiter.check("a") == 0
    assert RateLimiter(rate=0, burst=1).check("a") == 0  # 0 disables it


def test_rate_limiter_forgets_the_least_recent_keys():
    limiter = RateLimiter(rate=1, burst=1, max_keys=2, clock=lambda: 0.0)
    for k in "abc":
        limiter.check(k)
    assert limiter.check("a") == 0  # "a" was forgotten: a fresh bucket


def test_sse_events_round_trip():
    framer = sse.Framer("hello", "pcm", 16000)
    stream = sse.status("waking", 3.21, position=1) + framer.delta(b"\x00\x01" * 8000) + framer.done()
    stream += sse.error(504, "too slow", "activation_timeout")
    events = sse_events(stream)
    assert events[0] == {"type": "speech.status", "status": "waking", "elapsed": 3.21, "position": 1}
    assert events[1]["type"] == "speech.audio.delta" and events[1]["audio"].startswith("AAEAAQ")
    # a framed answer ends as the pod's own event would: what the MCP server reads is there
    assert events[2] == {
        "type": "speech.audio.done",
        "usage": {"input_tokens": 5, "output_tokens": 0, "total_tokens": 5},
        "sample_rate": 16000,
        "audio_seconds": 0.5,
    }
    assert events[3]["status"] == 504
    assert events[3]["type"] == "error" and events[3]["error"]["code"] == "activation_timeout"
    assert stream.endswith(b"\n\n") and json.loads(stream.split(b"\n\n")[0][6:])


def node(name, gpus, extra_labels=None):
    cap = {"cpu": "16"}
    if gpus is not None:
        cap["nvidia.com/gpu"] = str(gpus)
    return {
        "metadata": {"name": name, "labels": {"nvidia.com/gpu.product": "NVIDIA-L4", **(extra_labels or {})}},
        "status": {"capacity": cap, "allocatable": cap, "conditions": [{"type": "Ready", "status": "True"}]},
    }


def pod(node_name, gpus, init=0):
    spec = {
        "nodeName": node_name,
        "containers": [{"resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}, {"resources": {}}],
    }
    if init:
        spec["initContainers"] = [{"resources": {"requests": {"nvidia.com/gpu": str(init)}}}]
    return {"spec": spec}


def test_gpu_capacity_and_requests_per_node():
    nodes = [node("gpu-a", 4), node("cpu", None)]
    pods = [pod("gpu-a", 1), pod("gpu-a", 1, init=3), pod("cpu", 0), pod("elsewhere", 2)]
    out = node_gpus(nodes, pods)
    assert [n["node"] for n in out] == ["gpu-a"]  # nodes without GPUs are not listed
    assert out[0]["resources"]["nvidia.com/gpu"] == {"capacity": 4, "allocatable": 4, "requested": 4}
    assert out[0]["product"] == "NVIDIA-L4" and out[0]["ready"] is True
