"""Voice clips are decoded and checked; voice names are labels; a request's voice resolves right."""

import base64
import io

import numpy as np
import pytest
import soundfile as sf
from tts_api.voices import check_voice_name, inspect_clip, resolve, storable, voice_entry, voice_objects
from tts_crds.http_errors import ApiError

MB = 1024 * 1024


def clip_bytes(seconds: float, rate: int = 16000, fmt: str = "WAV", channels: int = 1, noise: bool = True) -> bytes:
    rng = np.random.default_rng(0)
    frames = int(seconds * rate)
    samples = (
        (rng.standard_normal((frames, channels)) * 3000).astype(np.int16)
        if noise
        else np.zeros((frames, channels), np.int16)
    )
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt, subtype="PCM_16" if fmt != "OGG" else "VORBIS")
    return buf.getvalue()


def check(data: bytes):
    return inspect_clip(data, 10 * MB, 1.0, 30.0)


def code_of(fn, *args) -> tuple[int, str]:
    with pytest.raises(ApiError) as err:
        fn(*args)
    return err.value.status, err.value.code


def test_wav_and_flac_clips_are_accepted_with_their_facts():
    wav = check(clip_bytes(2.5))
    assert (wav.format, wav.sample_rate, wav.channels) == ("wav", 16000, 1)
    assert wav.duration == pytest.approx(2.5)
    assert len(wav.sha256) == 64
    flac = check(clip_bytes(1.5, rate=24000, fmt="FLAC", channels=2))
    assert (flac.format, flac.channels) == ("flac", 2)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", (400, "empty_audio")),
        (b"this is not audio at all" * 10, (400, "invalid_audio")),
        (clip_bytes(0.0), (400, "empty_audio")),  # a valid WAV header with zero frames
        (clip_bytes(0.5), (400, "audio_too_short")),
        (clip_bytes(31), (400, "audio_too_long")),
        (clip_bytes(3, fmt="OGG"), (400, "unsupported_audio_format")),
        (clip_bytes(2, channels=3), (400, "unsupported_audio_format")),
        # a 3-sample "clip" at 1 Hz lasts 3 s: long enough, and no speech at all
        (clip_bytes(3, rate=1), (400, "unsupported_sample_rate")),
        (clip_bytes(2, rate=4000), (400, "unsupported_sample_rate")),
        (clip_bytes(1.5, rate=384000), (400, "unsupported_sample_rate")),
    ],
    ids=["empty", "not-audio", "zero-frames", "too-short", "too-long", "ogg", "3-channels", "1-hz", "4-khz", "384-khz"],
)
def test_bad_clips_are_refused_with_a_reason(data, expected):
    assert code_of(check, data) == expected


@pytest.mark.parametrize("rate", [8000, 22050, 48000, 192000])
def test_sample_rates_from_telephone_to_studio_are_accepted(rate):
    assert check(clip_bytes(1.2, rate=rate)).sample_rate == rate


def test_over_the_size_limit_is_413():
    assert code_of(inspect_clip, clip_bytes(3), 1000, 1.0, 30.0) == (413, "audio_too_large")


def test_truncated_wav_counts_only_the_samples_present():
    # the header promises 3 s; libsndfile reads what is there
    assert check(clip_bytes(3)[:-20000]).duration == pytest.approx(3 - 20000 / 32000)


def test_storable_keeps_small_clips_and_recompresses_big_ones_as_mono_flac():
    small = check(clip_bytes(2))
    assert storable(small) is small
    big = check(clip_bytes(20, rate=16000, channels=2))  # 1.28 MB of stereo wav
    stored = storable(big, limit=1_000_000)
    assert stored.format == "flac" and stored.channels == 1 and len(stored.data) <= 1_000_000
    assert sf.info(io.BytesIO(stored.data)).duration == pytest.approx(20)
    assert code_of(storable, big, 1000) == (413, "audio_too_large")


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", "Upper", "has space", "x" * 51, "-lead", "", "dot.ted"])
def test_path_like_or_invalid_voice_names_are_refused(name):
    assert code_of(check_voice_name, name) == (400, "invalid_voice_name")


def test_voice_objects_reference_the_configmap_that_holds_the_clip():
    clip = check(clip_bytes(2))
    voice, cm = voice_objects("anna", "ns", "joe", clip, "Hello there.", "en-GB", "test voice")
    ref = voice["spec"]["reference"]
    assert voice["spec"]["deployment"] == "joe" and "speaker" not in voice["spec"]
    assert ref == {
        "audio": {"configMapKeyRef": {"name": "tts-voice-anna", "key": "reference.wav"}},
        "text": "Hello there.",
    }
    assert cm["metadata"]["name"] == "tts-voice-anna"
    assert base64.b64decode(cm["binaryData"]["reference.wav"]) == clip.data
    assert voice["metadata"]["labels"]["tts.kubetts.io/deployment"] == "joe"


def voice_obj(spec, ready=None):
    obj = {"metadata": {"name": "v"}, "spec": spec}
    if ready is not None:
        obj["status"] = {"conditions": [{"type": "Ready", "status": ready, "reason": "Bad", "message": "clip is 40 s"}]}
    return obj


def test_resolve_builtin_default_and_passthrough():
    assert resolve("default", "joe", None, False).voice == "default"
    assert resolve("en_US-joe-medium", "joe", None, False).voice == "en_US-joe-medium"


def test_resolve_speaker_voice_with_its_default_speed():
    r = resolve("v", "joe", voice_obj({"deployment": "joe", "speaker": "af_heart", "defaults": {"speed": 1.25}}), False)
    assert (r.voice, r.clip, r.speed) == ("af_heart", None, 1.25)


def test_resolve_cloned_voice_to_its_clip_reference():
    spec = {
        "deployment": "joe",
        "reference": {"audio": {"secretKeyRef": {"name": "s", "key": "k"}}, "text": "transcript"},
    }
    r = resolve("v", "joe", voice_obj(spec), False)
    assert r.clip == ("secret", "s", "k") and r.ref_text == "transcript"
    assert code_of(resolve, "v", "joe", voice_obj(spec), True) == (400, "conflicting_voice")


def test_resolve_refuses_voices_of_other_models_and_clones_whose_clip_failed():
    spec = {"deployment": "other", "speaker": "x"}
    assert code_of(resolve, "v", "joe", voice_obj(spec), False) == (400, "voice_model_mismatch")
    clone = {"deployment": "joe", "reference": {"audio": {"configMapKeyRef": {"name": "c", "key": "k"}}}}
    bad = voice_obj(clone, ready="False")
    assert code_of(resolve, "v", "joe", bad, False) == (400, "voice_not_ready")
    assert voice_entry(bad)["ready"] is False and voice_entry(bad)["message"] == "clip is 40 s"
    # a speaker voice the operator could not check yet still goes to the pod, which knows its speakers
    unsure = voice_obj({"deployment": "joe", "speaker": "x"}, ready="False")
    assert resolve("v", "joe", unsure, False).voice == "x"
