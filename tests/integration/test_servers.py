"""Two third-party speech servers from PyPI run as ``engine: openai-compatible`` on the local cluster,
each from its image in the local registry (`make images`; images/servers/Containerfile):

- local-tts-studio 1.0.0 (Piper, the joe voice; WAV and PCM only),
- fastkokoro 0.7.0 (Kokoro-82M int8 ONNX, five voices; no AAC; it streams).

For each: the OpenAI SDK speaks through the router in all six formats (the bridge converts what the
server lacks), its voices are listed by the router, SSE is offered, Whisper hears it, and it scales
to zero and wakes on the next request. Bad servers (never ready, errors, not audio) are in
test_servers_failing below.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

import httpx
import pytest
from openai import OpenAI
from tts_devcluster.layout import REGISTRY, Layout

from tests.helpers import decode_audio, eventually
from tests.listen import SENTENCES, listener, wer

from .conftest import Kube, Models, Router, wait_router_sees
from .test_images import APP_VERSION as VERSION
from .test_operator import condition, wait_condition

IDLE = 30  # long enough that the module's other tests keep it awake, short enough to wait for
FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")

SERVERS: dict[str, dict[str, Any]] = {
    "local-tts-studio": {
        "model": {"uri": "file:///opt/voices"},
        "server": {
            "image": f"{REGISTRY}/kube-tts/local-tts-studio:{VERSION}",
            "port": 7878,
            "paths": {"health": "/api/health", "voices": "/api/voices/installed"},
            "formats": ["wav", "pcm"],
        },
        "resources": {"gpu": 0, "cpu": "1", "memory": "1Gi"},
        "voices": ["en_US-joe-medium"],
        "wer": 0.10,  # piper joe: 0.000-0.007 through kube-tts's own engine
    },
    "fastkokoro": {
        "model": {"uri": "file:///opt/kokoro"},
        "server": {
            "image": f"{REGISTRY}/kube-tts/fastkokoro:{VERSION}",
            "port": 8880,
            "model": "kokoro",  # it refuses tts-1
            "paths": {"health": "/health", "voices": "/v1/audio/voices"},
            "formats": ["mp3", "opus", "flac", "wav", "pcm"],
            "sampleRate": 24000,
            "streams": True,
        },
        "env": [{"name": "FASTKOKORO_ONNX_INTRA_OP_NUM_THREADS", "value": "1"}],
        "resources": {"gpu": 0, "cpu": "1", "memory": "2Gi"},
        "voices": ["alpha", "gongitsune", "kumo", "nezumi", "tebukuro"],
        "wer": 0.20,  # Kokoro's Japanese voice speaking English (0.000 in kube-tts's own engine)
    },
}


@pytest.fixture(scope="module")
def server_images(layout: Layout) -> None:
    """The two servers' images in the local registry (`make images` builds them; seconds when cached)."""
    env = {**os.environ, "PATH": f"{layout.bin}:{os.environ['PATH']}"}
    script = str(layout.repo / "devcluster/images.sh")
    proc = subprocess.run([script, *SERVERS], capture_output=True, text=True, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]


@pytest.fixture(scope="module", params=sorted(SERVERS))
def server(
    request: pytest.FixtureRequest, server_images: None, models: Models, router: Router
) -> tuple[str, dict[str, Any]]:
    """A server-engine TtsDeployment, ready and known to the router."""
    case = SERVERS[request.param]
    spec = {k: v for k, v in case.items() if k not in ("voices", "wer")}
    name = models.create(
        request.param, wait_ready=False, engine="openai-compatible", scaleToZero={"idleSeconds": IDLE}, **spec
    )
    models.wait_ready(name, timeout=600)  # the first pull of a server image takes a while
    wait_router_sees(router, name)
    return name, case


def sdk(router: Router) -> OpenAI:
    return OpenAI(base_url=f"{router.url}/v1", api_key=router.key, max_retries=0, timeout=180)


def test_the_sdk_gets_every_format_whatever_the_server_makes(router: Router, server):
    name, case = server
    for fmt in FORMATS:
        resp = sdk(router).audio.speech.create(model=name, voice="default", input=SENTENCES[0], response_format=fmt)
        rate = int(resp.response.headers.get("x-sample-rate", "0"))
        audio = decode_audio(resp.content, fmt, rate)
        made = "made" if fmt in case["server"]["formats"] else "converted"
        print(f"\n{name} {fmt} ({made}): {audio.duration:.2f} s at {audio.sample_rate} Hz, {len(resp.content)} bytes")
        assert audio.duration > 1.5 and audio.rms > 300, (fmt, audio.duration, audio.rms)


def test_its_voices_are_listed_and_speak(router: Router, server):
    name, case = server
    listed = httpx.get(f"{router.url}/v1/audio/voices", params={"model": name}, headers=router.headers(), timeout=30)
    ids = [v["id"] for v in listed.json()["data"] if v["type"] == "builtin"]
    assert ids == case["voices"]
    last = case["voices"][-1]
    resp = sdk(router).audio.speech.create(model=name, voice=last, input="A named voice.", response_format="wav")
    assert decode_audio(resp.content, "wav").duration > 0.5
    # OpenAI's voice names map onto the server's voices as onto any model's (ADR 0042)
    alloy = sdk(router).audio.speech.create(model=name, voice="alloy", input="An OpenAI name.", response_format="mp3")
    assert decode_audio(alloy.content, "mp3").duration > 0.5
    with pytest.raises(Exception, match="not one of the server's voices"):
        sdk(router).audio.speech.create(model=name, voice="no-such-voice", input="Hi.", response_format="wav")


def test_sse_and_streaming_through_the_router(router: Router, server):
    name, _ = server
    events = router.speech_events(model=name, input=SENTENCES[1], response_format="mp3")
    assert events[-1]["type"] == "speech.audio.done"
    assert sum(e["type"] == "speech.audio.delta" for e in events) >= 1
    with sdk(router).audio.speech.with_streaming_response.create(
        model=name, voice="default", input=SENTENCES[2], response_format="opus"
    ) as resp:
        chunks = list(resp.iter_bytes())
    assert decode_audio(b"".join(chunks), "opus").duration > 1.5


def test_whisper_hears_it(router: Router, server, capsys):
    name, case = server
    hear = listener()
    sentences = SENTENCES[:4]
    heard = [hear.transcribe(router.speak(name, s, timeout=180).content, "en") for s in sentences]
    score = wer(list(sentences), heard)
    with capsys.disabled():
        print(f"\n# {name}: WER {score:.3f} over {len(sentences)} sentences")
        for said, got in zip(sentences, heard, strict=True):
            print(f"  said {said!r}\n  heard {got!r}")
    assert score <= case["wer"]


def test_it_scales_to_zero_and_wakes(kube: Kube, router: Router, server):
    name, _ = server
    asleep = wait_condition(kube, router.namespace, name, "Ready", "False", "ScaledToZero", timeout=IDLE + 90)
    assert asleep["spec"]["replicas"] == 0
    eventually(lambda: not kube.list("pods", router.namespace, f"tts.kubetts.io/deployment={name}"), 90, what="no pods")
    t0 = time.monotonic()
    woke = sdk(router).audio.speech.create(model=name, voice="default", input="I was asleep.", response_format="aac")
    wake = time.monotonic() - t0
    assert decode_audio(woke.content, "aac").duration > 0.5
    print(f"\n{name} woke from zero and spoke in {wake:.1f} s")
    # the router serves a woken pod as soon as it answers /readyz (ADR 0038): the status follows
    awake = wait_condition(kube, router.namespace, name, "Ready", "True", timeout=60)
    assert awake["spec"]["replicas"] == 1


# --- servers that fail -------------------------------------------------------------------------


def studio(**server: Any) -> dict[str, Any]:
    """local-tts-studio misconfigured by ``server`` (its real image: a real server that answers wrongly)."""
    case = SERVERS["local-tts-studio"]
    return {
        "engine": "openai-compatible",
        "model": case["model"],
        "resources": case["resources"],
        "server": {**case["server"], **server},
    }


@pytest.mark.usefixtures("server_images")
def test_a_server_that_answers_no_audio_is_a_502_then_a_condition(kube: Kube, models: Models, router: Router):
    """Its speech path answers 200 with JSON: each client gets a 502 in OpenAI's shape at once; after
    three in a row the pod leaves the endpoints and the TtsDeployment says ServerFailing, with an event."""
    name = models.create(
        "no-audio",
        wait_ready=False,
        **studio(paths={**SERVERS["local-tts-studio"]["server"]["paths"], "speech": "/api/logs/test"}),
    )
    models.wait_ready(name, timeout=600)
    wait_router_sees(router, name)
    for _ in range(3):
        resp = router.speak(name, "This will not be audio.", timeout=60)
        assert resp.status_code == 502, resp.text
        error = resp.json()["error"]
        assert "application/json, not wav audio" in error["message"] and error["type"] == "server_error"
    failing = wait_condition(kube, router.namespace, name, "Degraded", "True", "ServerFailing", timeout=60)
    assert "answers errors or no audio" in condition(failing, "Degraded")["message"]
    assert condition(failing, "Ready")["reason"] == "ServerFailing"
    eventually(lambda: "ServerFailing" in [e["reason"] for e in kube.events(router.namespace, name)], 30, what="event")


@pytest.mark.usefixtures("server_images")
def test_a_server_that_never_becomes_ready_says_so_and_requests_end(kube: Kube, models: Models, router: Router):
    """Declared on a port it does not listen on (nothing answers its health path): ServerStarting,
    then restarted after startupSeconds and CrashLooping; a request held for it ends with 504 after
    activationTimeoutSeconds, not a hang."""
    name = models.create(
        "never-ready", wait_ready=False, activationTimeoutSeconds=15, **studio(port=7879, startupSeconds=10)
    )
    starting = wait_condition(kube, router.namespace, name, "Ready", "False", "ServerStarting", timeout=600)
    assert "does not answer its readiness path" in condition(starting, "Ready")["message"]
    t0 = time.monotonic()
    resp = router.speak(name, "Anyone there?", timeout=60)
    assert resp.status_code == 504 and resp.json()["error"]["code"] == "activation_timeout"
    assert time.monotonic() - t0 < 30
    looping = wait_condition(kube, router.namespace, name, "Degraded", "True", "CrashLooping", timeout=180)
    assert "container server" in condition(looping, "Degraded")["message"]
