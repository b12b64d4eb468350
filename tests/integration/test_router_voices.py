"""Voices on the local cluster: upload a clip (a TtsVoice plus its ConfigMap), list, use, delete;
TtsVoices with a built-in speaker; every kind of bad upload refused with a clear 4xx."""

from __future__ import annotations

import base64
import io
import uuid

import httpx
import numpy as np
import pytest
import soundfile as sf

from tests.helpers import decode_wav, eventually

from .conftest import Kube, Models, Router, make_cloner, tts_voice

MB = 1024 * 1024


BY_NAME = "This voice was chosen by name."


@pytest.fixture(scope="module")
def reference_clip(router: Router, speaker: str) -> bytes:
    """A few seconds of real speech, made by the platform itself."""
    resp = router.speak(speaker, input="Hello, this is my voice. I agree to it being used for cloning.")
    assert resp.status_code == 200
    return resp.content


def upload(router: Router, admin: bool = True, file: tuple | None = None, **fields) -> httpx.Response:
    data = {"consent": "true", "transcript": "Hello, this is my voice.", "language": "en-US", **fields}
    return httpx.post(
        f"{router.url}/v1/audio/voices",
        headers=router.headers(admin=admin),
        data={k: v for k, v in data.items() if v is not None},
        files={"file": file} if file else None,
        timeout=60,
    )


def voices(router: Router, model: str | None = None) -> list[dict]:
    params = {"model": model} if model else {}
    resp = httpx.get(f"{router.url}/v1/audio/voices", headers=router.headers(), params=params, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


def test_upload_creates_a_voice_with_its_clip_and_delete_cleans_up(
    router: Router, kube: Kube, speaker: str, reference_clip: bytes
):
    name = f"clone-{uuid.uuid4().hex[:6]}"
    resp = upload(router, name=name, model=speaker, file=("me.wav", reference_clip, "audio/wav"))
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["id"] == name and created["type"] == "clone" and created["model"] == speaker
    assert created["audio"]["durationSeconds"] == pytest.approx(decode_wav(reference_clip).duration, abs=0.01)

    voice = kube.get("ttsvoice", name, router.namespace)
    assert voice is not None
    ref = voice["spec"]["reference"]
    assert voice["spec"]["deployment"] == speaker and ref["text"] == "Hello, this is my voice."
    cm = kube.get("configmap", ref["audio"]["configMapKeyRef"]["name"], router.namespace)
    assert cm is not None
    assert base64.b64decode(cm["binaryData"][ref["audio"]["configMapKeyRef"]["key"]]) == reference_clip
    owner = cm["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("TtsVoice", name, voice["metadata"]["uid"])

    # listed (with the built-in speaker) once the router's watch has it
    eventually(lambda: any(v["id"] == name for v in voices(router, speaker)), timeout=15, what="voice listed")
    listed = {v["id"]: v for v in voices(router, speaker)}
    assert listed[name]["type"] == "clone" and listed["en_US-joe-medium"]["type"] == "builtin"
    model = httpx.get(f"{router.url}/v1/models/{speaker}", headers=router.headers()).json()
    assert name in model["voices"]

    # once the operator has checked the clip, speaking with it sends the clip to the pod as
    # ref_audio; Piper cannot clone and says so — the router relays that 400 (the cloning-engine
    # test below speaks in an uploaded voice)
    eventually(
        lambda: (
            (v := kube.get("ttsvoice", name, router.namespace))
            and any(c["type"] == "Ready" and c["status"] == "True" for c in v.get("status", {}).get("conditions", []))
        ),
        timeout=60,
        interval=0.5,
        what="voice Ready",
    )
    resp = router.speak(speaker, input=BY_NAME, voice=name)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "cloning_not_supported", resp.text
    # a second upload under the same name conflicts
    again = upload(router, name=name, model=speaker, file=("me.wav", reference_clip, "audio/wav"))
    assert again.status_code == 409 and again.json()["error"]["code"] == "voice_exists"

    resp = httpx.delete(f"{router.url}/v1/audio/voices/{name}", headers=router.headers(admin=True))
    assert resp.status_code == 200 and resp.json()["deleted"] is True
    eventually(lambda: kube.get("ttsvoice", name, router.namespace) is None, timeout=30, what="voice gone")
    # the garbage collector follows the owner reference
    eventually(
        lambda: kube.get("configmap", cm["metadata"]["name"], router.namespace) is None, timeout=60, what="clip gone"
    )
    missing = httpx.delete(f"{router.url}/v1/audio/voices/{name}", headers=router.headers(admin=True))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "voice_not_found"


def test_speaker_voice_uses_the_builtin_speaker_and_its_default_speed(router: Router, kube: Kube, speaker: str):
    name = f"fast-{uuid.uuid4().hex[:6]}"
    kube.apply(tts_voice(name, speaker, speaker="en_US-joe-medium", defaults={"speed": 2.0}), router.namespace)
    try:
        eventually(lambda: any(v["id"] == name for v in voices(router)), timeout=15, what="voice listed")
        normal = decode_wav(router.speak(speaker, input=BY_NAME).content)
        fast = router.speak(speaker, input=BY_NAME, voice=name)
        assert fast.status_code == 200, fast.text
        fast_audio = decode_wav(fast.content)
        assert fast_audio.rms > 500
        assert fast_audio.duration < normal.duration * 0.7, (fast_audio.duration, normal.duration)
        # a speed the client states wins over the voice's default
        explicit = decode_wav(router.speak(speaker, input=BY_NAME, voice=name, speed=1.0).content)
        assert explicit.duration == pytest.approx(normal.duration, rel=0.15)
        # an unknown voice name is the pod's 400, relayed
        unknown = router.speak(speaker, input=BY_NAME, voice="nobody")
        assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "voice_not_found"
    finally:
        kube.run("delete", "ttsvoice", name, "-n", router.namespace, "--wait=false", check=False)


def wav(seconds: float, rate: int = 16000, fmt: str = "WAV", channels: int = 1) -> bytes:
    samples = (np.sin(np.arange(int(seconds * rate)) * 2 * np.pi * 220 / rate) * 8000).astype(np.int16)
    buf = io.BytesIO()
    sf.write(buf, np.repeat(samples[:, None], channels, axis=1), rate, format=fmt)
    return buf.getvalue()


BAD_UPLOADS = {
    "not-audio": ({}, ("x.wav", b"definitely not a wav file" * 40, "audio/wav"), 400, "invalid_audio"),
    "zero-length": ({}, ("x.wav", b"", "audio/wav"), 400, "empty_audio"),
    "too-short": ({}, ("x.wav", wav(0.4), "audio/wav"), 400, "audio_too_short"),
    "too-long": ({}, ("x.wav", wav(31), "audio/wav"), 400, "audio_too_long"),
    "mp3": ({}, ("x.mp3", wav(3, fmt="MP3"), "audio/mpeg"), 400, "unsupported_audio_format"),
    "over-10mb": ({}, ("x.wav", b"RIFF" + bytes(10 * MB + 10), "audio/wav"), 413, "audio_too_large"),
    "path-name": ({"name": "../../etc/passwd"}, ("x.wav", wav(2), "audio/wav"), 400, "invalid_voice_name"),
    "no-consent": ({"consent": None}, ("x.wav", wav(2), "audio/wav"), 400, "consent_required"),
    "consent-false": ({"consent": "false"}, ("x.wav", wav(2), "audio/wav"), 400, "consent_required"),
    "bad-language": ({"language": "not a language!"}, ("x.wav", wav(2), "audio/wav"), 400, "invalid_value"),
    "unknown-model": ({"model": "no-such-model"}, ("x.wav", wav(2), "audio/wav"), 404, "model_not_found"),
    "no-file": ({}, None, 400, "invalid_value"),
    # hostile rates: a 3-sample "clip" at 1 Hz lasts 3 s; 400 kHz is no recording
    "rate-1-hz": ({}, ("x.wav", wav(3, rate=1), "audio/wav"), 400, "unsupported_sample_rate"),
    "rate-400-khz": ({}, ("x.wav", wav(1.5, rate=400_000), "audio/wav"), 400, "unsupported_sample_rate"),
    "six-channels": ({}, ("x.wav", wav(2, channels=6), "audio/wav"), 400, "unsupported_audio_format"),
    # more path-like and invalid names
    "name-dotdot": ({"name": ".."}, ("x.wav", wav(2), "audio/wav"), 400, "invalid_voice_name"),
    "name-slash": ({"name": "a/b"}, ("x.wav", wav(2), "audio/wav"), 400, "invalid_voice_name"),
    "name-encoded": ({"name": "%2e%2e%2fetc"}, ("x.wav", wav(2), "audio/wav"), 400, "invalid_voice_name"),
    "name-upper": ({"name": "Anna"}, ("x.wav", wav(2), "audio/wav"), 400, "invalid_voice_name"),
    "name-unicode": ({"name": "名字"}, ("x.wav", wav(2), "audio/wav"), 400, "invalid_voice_name"),
    "name-too-long": ({"name": "a" * 51}, ("x.wav", wav(2), "audio/wav"), 400, "invalid_voice_name"),
    # bigger than any request the router reads
    "over-16mb": ({}, ("x.wav", b"RIFF" + bytes(17 * MB), "audio/wav"), 413, "request_too_large"),
}


@pytest.mark.parametrize("case", BAD_UPLOADS, ids=list(BAD_UPLOADS))
def test_bad_uploads_are_refused_with_a_reason(router: Router, kube: Kube, speaker: str, case: str):
    fields, file, status, code = BAD_UPLOADS[case]
    name = fields.pop("name", f"bad-{uuid.uuid4().hex[:6]}")
    resp = upload(router, file=file, **{"name": name, "model": speaker, **fields})
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] == code and error["message"], error
    assert kube.get("ttsvoice", name, router.namespace) is None


def test_voice_writes_need_an_admin_key(router: Router, speaker: str):
    resp = upload(router, admin=False, name="nope", model=speaker, file=("x.wav", wav(2), "audio/wav"))
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "insufficient_scope"
    resp = httpx.delete(f"{router.url}/v1/audio/voices/nope", headers=router.headers())
    assert resp.status_code == 403
    unknown = httpx.get(f"{router.url}/v1/audio/voices", headers=router.headers(), params={"model": "no-such-model"})
    assert unknown.status_code == 404


@pytest.fixture(scope="module")
def cloner(models: Models, router: Router, layout) -> str:
    return make_cloner(models, router, layout)


def test_an_uploaded_voice_becomes_ready_and_speaks_through_a_cloning_engine(
    router: Router, kube: Kube, cloner: str, reference_clip: bytes
):
    name = f"anna-{uuid.uuid4().hex[:6]}"
    resp = upload(router, name=name, model=cloner, file=("anna.wav", reference_clip, "audio/wav"))
    assert resp.status_code == 201, resp.text

    def ready():
        voice = kube.get("ttsvoice", name, router.namespace) or {}
        cond = next((c for c in voice.get("status", {}).get("conditions", []) if c["type"] == "Ready"), {})
        return cond.get("status") == "True" and voice

    voice = eventually(ready, timeout=60, interval=0.5, what="the operator to accept the uploaded clip")
    assert voice["status"]["audio"]["durationSeconds"] == pytest.approx(decode_wav(reference_clip).duration, abs=0.01)
    eventually(
        lambda: router.speak(cloner, input=BY_NAME, voice=name).status_code == 200,
        timeout=30,
        interval=1,
        what="the router to speak with the ready voice",
    )
    audio = decode_wav(router.speak(cloner, input="Cloned from an uploaded clip.", voice=name).content)
    assert audio.sample_rate == 24000 and audio.duration > 0.2 and audio.rms > 0
    httpx.delete(f"{router.url}/v1/audio/voices/{name}", headers=router.headers(admin=True), timeout=30)


def hostile_clips(seed: int = 9) -> dict[str, bytes]:
    """Random and mangled files, the same every run: random bytes (some behind audio magic numbers),
    valid clips cut at random points or with random bytes flipped, headers that lie about sizes."""
    rng = np.random.default_rng(seed)
    good = wav(2.0)
    clips = {}
    for i in range(8):
        clips[f"random-{i}"] = rng.bytes(int(rng.integers(1, 200_000)))
    for i, magic in enumerate((b"RIFF", b"fLaC", b"OggS", b"ID3", b"RIFF\xff\xff\xff\xffWAVEfmt ")):
        clips[f"magic-{i}"] = magic + rng.bytes(int(rng.integers(10, 50_000)))
    for i in range(6):
        clips[f"cut-{i}"] = good[: int(rng.integers(1, len(good)))]
    for i in range(6):
        mangled = bytearray(good)
        for pos in rng.integers(0, 64, size=int(rng.integers(1, 8))):  # the header
            mangled[pos] = int(rng.integers(0, 256))
        clips[f"flipped-{i}"] = bytes(mangled)
    lying = bytearray(good)
    lying[40:44] = (0xFFFFFFF0).to_bytes(4, "little")  # data chunk claims 4 GiB
    clips["data-claims-4gib"] = bytes(lying)
    return clips


def test_hostile_uploads_never_get_a_server_error_or_leave_a_voice(router: Router, kube: Kube, speaker: str):
    answers = {}
    for case, data in hostile_clips().items():
        name = f"hostile-{uuid.uuid4().hex[:6]}"
        resp = upload(router, name=name, model=speaker, file=("clip.wav", data, "audio/wav"))
        answers[case] = resp.status_code
        assert resp.status_code < 500, (case, resp.text)
        if resp.status_code == 201:
            # a mangled file that still decodes to 1-30 s of audio at a sane rate is a clip like any other
            created = resp.json()["audio"]
            assert 1.0 <= created["durationSeconds"] <= 30.0 and 8000 <= created["sampleRate"] <= 192_000, created
            httpx.delete(f"{router.url}/v1/audio/voices/{name}", headers=router.headers(admin=True))
        else:
            assert resp.status_code in (400, 413) and resp.json()["error"]["code"], (case, resp.text)
            assert kube.get("ttsvoice", name, router.namespace) is None, case
    assert sum(code >= 400 for code in answers.values()) >= len(answers) - 8, answers
    print(f"\n{len(answers)} hostile uploads: {sorted(answers.items(), key=lambda kv: kv[1])}")


def test_the_uploaded_file_name_is_never_used_as_a_path(router: Router, kube: Kube, speaker: str):
    name = f"pathy-{uuid.uuid4().hex[:6]}"
    resp = upload(router, name=name, model=speaker, file=("../../../etc/passwd", wav(2), "audio/wav"))
    assert resp.status_code == 201, resp.text
    try:
        voice = kube.get("ttsvoice", name, router.namespace)
        assert voice is not None
        ref = voice["spec"]["reference"]["audio"]["configMapKeyRef"]
        assert ref == {"name": f"tts-voice-{name}", "key": "reference.wav"}
    finally:
        httpx.delete(f"{router.url}/v1/audio/voices/{name}", headers=router.headers(admin=True))
