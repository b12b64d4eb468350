"""The server engine's pure parts: the spec, the pod the operator builds, and the bridge's voice
lists, format choice, audio checks and conversion (ADR 0047, 0048)."""

from __future__ import annotations

import asyncio
import io
import json

import numpy as np
import pytest
import soundfile as sf
from tts_crds.models import ServerSpec, TtsDeploymentSpec
from tts_inference import audio
from tts_inference.bridge import convert, upstream
from tts_inference.bridge.voices import listing, normalise
from tts_operator import children
from tts_operator.settings import OperatorSettings

from tests.unit.test_operator_children import OWNER

SERVER = {"image": "reg/fastkokoro:1", "port": 8880, "paths": {"voices": "/v1/audio/voices"}, "formats": ["mp3", "wav"]}


def pod(**spec):
    body = {"engine": "openai-compatible", "model": {"uri": "file:///opt/kokoro"}, "server": SERVER, **spec}
    parsed = TtsDeploymentSpec.model_validate(body)
    return children.deployment(OWNER, parsed, OperatorSettings(inference_image="img:1"))["spec"]["template"]["spec"]


def test_the_pod_runs_the_bridge_on_the_inference_port_and_the_server_beside_it():
    spec = pod(resources={"gpu": 1, "memory": "3Gi"})
    bridge, server = spec["containers"]
    assert (bridge["name"], bridge["image"], bridge["command"]) == (
        "inference",
        "img:1",
        ["python", "-m", "tts_inference.bridge"],
    )
    assert bridge["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    config = json.loads(next(e["value"] for e in bridge["env"] if e["name"] == "KUBETTS_SERVER"))
    assert ServerSpec.model_validate(config).formats == ["mp3", "wav"]
    assert server["image"] == "reg/fastkokoro:1" and "command" not in server  # the image's entrypoint
    assert server["ports"] == [{"name": "server", "containerPort": 8880, "protocol": "TCP"}]
    # the GPU and the memory go to the server; the bridge has a small fixed share
    assert server["resources"]["limits"] == {"memory": "3Gi", "nvidia.com/gpu": 1}
    assert "nvidia.com/gpu" not in bridge["resources"]["limits"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]


def test_probes_go_to_the_declared_paths_and_every_container_is_restricted():
    spec = pod(server={**SERVER, "paths": {"health": "/api/health", "ready": "/ready"}})
    bridge, server = spec["containers"]
    assert server["startupProbe"]["httpGet"] == {"path": "/api/health", "port": "server"}
    assert server["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "server"}
    assert server["livenessProbe"]["httpGet"] == {"path": "/api/health", "port": "server"}
    assert bridge["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    for c in (bridge, server):
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
        assert sc["capabilities"] == {"drop": ["ALL"]}
    assert spec["securityContext"]["runAsUser"] == 65532 and spec["automountServiceAccountToken"] is False


def test_an_hf_model_is_fetched_by_the_inference_image_and_mounted_where_the_server_wants_it():
    spec = pod(
        model={"uri": "hf://org/voices@v1"},
        server={**SERVER, "modelMountPath": "/data/model", "args": ["--model", "/data/model"]},
    )
    (init,) = spec["initContainers"]
    assert init["image"] == "img:1" and init["command"] == ["python", "-m", "tts_inference.fetch"]
    server = spec["containers"][1]
    assert {"name": "model", "mountPath": "/data/model", "readOnly": True} in server["volumeMounts"]
    assert {"name": "KUBETTS_MODEL_DIR", "value": "/data/model"} in server["env"]
    assert server["args"] == ["--model", "/data/model"]


def test_a_file_model_names_its_path_and_user_env_reaches_the_server():
    spec = pod(env=[{"name": "FASTKOKORO_DEFAULT_VOICE", "value": "kumo"}])
    server = spec["containers"][1]
    assert {"name": "KUBETTS_MODEL_DIR", "value": "/opt/kokoro"} in server["env"]
    assert {"name": "FASTKOKORO_DEFAULT_VOICE", "value": "kumo"} in server["env"]


@pytest.mark.parametrize(
    ("body", "ids"),
    [
        (["a", "b", "a"], ["a", "b"]),
        ({"voices": ["alpha", "kumo"]}, ["alpha", "kumo"]),
        ({"voices": [{"key": "en_US-joe-medium", "language": "en_US"}]}, ["en_US-joe-medium"]),
        ({"data": [{"id": "x", "name": "X"}, {"voice_id": "y"}, 3, {}]}, ["x", "y"]),
        ([{"name": "only-a-name"}], ["only-a-name"]),
    ],
)
def test_voice_lists_of_the_common_shapes_normalise(body, ids):
    assert [v["id"] for v in normalise(body) or []] == ids


def test_unknown_voice_shapes_are_none_and_the_listing_names_a_default():
    assert normalise({"voices": "alpha"}) is None and normalise(42) is None
    voices = normalise({"voices": [{"key": "k", "language": "en_US"}]}) or []
    assert voices == [{"id": "k", "name": "k", "language": "en_US"}]
    assert listing(voices, "")["default"] == "k" and listing(voices, "z")["default"] == "z"
    assert listing([], "")["data"] == []


def test_the_bridge_asks_for_the_wanted_format_when_the_server_has_it_else_the_best_it_can_read():
    assert convert.source_format("mp3", ["mp3", "wav"], 0) == "mp3"
    assert convert.source_format("aac", ["mp3", "opus", "flac", "wav", "pcm"], 0) == "wav"
    assert convert.source_format("aac", ["mp3", "pcm"], 0) == "mp3"  # pcm without a rate is unusable
    assert convert.source_format("aac", ["mp3", "pcm"], 24000) == "pcm"
    with pytest.raises(ValueError, match="sampleRate"):
        convert.source_format("wav", ["pcm"], 0)


def test_answers_that_are_not_audio_are_told_apart():
    wav = audio.encode(np.zeros(2400, np.int16), 24000, "wav")
    convert.check_audio("wav", wav[:16], "audio/wav")
    convert.check_audio("mp3", audio.encode(np.zeros(2400, np.int16), 24000, "mp3")[:16], "audio/mpeg")
    for fmt, head, ctype, why in [
        ("wav", b'{"detail": "x"}', "application/json", "application/json"),
        ("wav", b"<html>", "text/html; charset=utf-8", "text/html"),
        ("wav", b"", "audio/wav", "empty"),
        ("flac", wav[:16], "audio/flac", "flac"),
        ("mp3", b"hello world", "application/octet-stream", "mp3"),
    ]:
        with pytest.raises(convert.NotAudio, match=why):
            convert.check_audio(fmt, head, ctype)


async def _pieces(data: bytes, size: int):
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _convert(data: bytes, source: str, wanted: str, size: int, rate: int = 0) -> bytes:
    async def run() -> bytes:
        return b"".join([c async for c in convert.Converter(source, wanted, rate).run(_pieces(data, size))])

    return asyncio.run(run())


@pytest.mark.parametrize("size", [7, 4096])
def test_a_wav_stream_converts_as_it_arrives_whatever_its_chunking(size):
    tone = (np.sin(np.arange(24000) / 24000 * 2 * np.pi * 440) * 8000).astype(np.int16)
    stereo = np.stack([tone, tone], axis=1)
    buf = io.BytesIO()
    sf.write(buf, stereo, 24000, format="WAV", subtype="PCM_16")  # stereo, with a LIST chunk or not
    flac = _convert(buf.getvalue(), "wav", "flac", size)
    clip = audio.decode_clip(flac)  # a streamed FLAC (unknown length): FFmpeg reads it
    samples = audio.to_int16(clip.samples)
    assert clip.sample_rate == 24000 and abs(len(samples) - 24000) < 10
    assert np.abs(samples.astype(int) - tone[: len(samples)]).max() <= 2


def test_pcm_and_whole_file_sources_convert_too():
    tone = (np.sin(np.arange(12000) / 24000 * 2 * np.pi * 300) * 8000).astype(np.int16)
    wav = _convert(tone.astype("<i2").tobytes(), "pcm", "wav", 333, rate=24000)
    assert sf.info(io.BytesIO(wav)).samplerate == 24000
    mp3 = audio.encode(tone, 24000, "mp3")
    back = audio.decode_clip(_convert(mp3, "mp3", "opus", 1000))
    assert back.duration == pytest.approx(0.5, abs=0.1)
    with pytest.raises(convert.NotAudio):
        _convert(b"RIFF\x00\x00\x00\x00WAVEdata\x00\x00\x00\x00", "wav", "mp3", 100)
    with pytest.raises(convert.NotAudio):
        _convert(b"not audio at all", "mp3", "wav", 100)


def test_what_each_api_is_sent():
    from tts_crds.speech import SpeechRequest

    body = SpeechRequest(model="m", input="Hi.", voice="alloy", speed=1.5, ref_text="Said before.")
    openai = ServerSpec.model_validate({**SERVER, "streams": True, "model": "kokoro"})
    assert upstream.request_body(openai, body, "alpha", "wav").json == {
        "model": "kokoro",
        "input": "Hi.",
        "voice": "alpha",
        "response_format": "wav",
        "speed": 1.5,
        "stream": True,
    }
    seed = ServerSpec.model_validate({**SERVER, "api": "tts-api", "paths": {"speech": "/api/tts"}})
    assert upstream.request_body(seed, body, "spk", "wav").json == {"text": "Hi.", "voice": "spk"}
    glm = ServerSpec.model_validate(
        {
            **SERVER,
            "api": "tts-api",
            "ttsApi": {
                "encoding": "form",
                "referenceAudioField": "prompt_audio",
                "referenceTextField": "prompt_text",
                "speedField": "speed",
                "extra": {"temperature": "0.8"},
            },
        }
    )
    out = upstream.request_body(glm, body, "default", "wav", clip=b"RIFF")
    assert out.json is None
    assert out.data == {"temperature": "0.8", "text": "Hi.", "speed": "1.5", "prompt_text": "Said before."}
    assert out.files == {"prompt_audio": ("reference.wav", b"RIFF", "application/octet-stream")}


def test_the_breaker_trips_after_failures_in_a_row_and_cools_off():
    now = [100.0]
    failures = upstream.Failures(trip_after=2, cool_off=10, clock=lambda: now[0])
    failures.failed("500")
    assert failures.tripped() is None
    failures.failed("not audio")
    assert "2 requests in a row; last: not audio" in (failures.tripped() or "")
    now[0] += 11
    assert failures.tripped() is None  # one more try
    failures.failed("still")
    assert failures.tripped() is not None
    failures.ok()
    assert failures.tripped() is None and failures.last_error is None


def _pod(server_ready: bool, bridge_ready: bool) -> dict:
    def cs(name, ready):
        return {"name": name, "ready": ready, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}

    return {
        "metadata": {"name": "p1"},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [cs("inference", bridge_ready), cs("server", server_ready)],
        },
    }


def test_server_pods_that_are_not_ready_say_why():
    from tts_operator.status import analyse_pods, deployment_status

    assert "ServerStarting" in analyse_pods([_pod(False, False)], "nvidia.com/gpu").reasons
    failing = analyse_pods([_pod(True, False)], "nvidia.com/gpu").reasons
    assert "answers errors or no audio" in failing["ServerFailing"][0]
    owner = {"metadata": {"name": "x", "namespace": "tts", "generation": 1}, "spec": {"replicas": 1}}
    status = deployment_status(owner, {"status": {}}, [_pod(True, False)], at="2026-01-01T00:00:00Z")
    conditions = {c.type: c for c in status.conditions}
    assert (conditions["Ready"].reason, conditions["Degraded"].status) == ("ServerFailing", "True")
