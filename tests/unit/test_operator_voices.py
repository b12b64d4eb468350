import io

import numpy as np
import soundfile as sf
from tts_operator.voices import check_speaker, inspect_clip


def clip(seconds, rate=16000, fmt="WAV", channels=1):
    t = np.arange(int(seconds * rate)) / rate
    data = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    if channels > 1:
        data = np.stack([data] * channels, axis=1)
    buf = io.BytesIO()
    sf.write(buf, data, rate, format=fmt)
    return buf.getvalue()


def test_good_clip_reports_duration_rate_and_hash():
    v = inspect_clip(clip(3.0, fmt="FLAC"))
    assert v.ok and v.reason == "Validated"
    assert v.clip.duration == 3.0 and v.clip.sample_rate == 16000 and len(v.clip.sha256) == 64


def test_bad_clips_get_specific_reasons():
    assert inspect_clip(b"").reason == "AudioInvalid"
    noise = inspect_clip(np.random.default_rng(0).bytes(50_000))
    assert noise.reason == "AudioInvalid" and "cannot decode" in noise.message
    assert inspect_clip(clip(45)).reason == "AudioTooLong"
    assert inspect_clip(clip(0.5)).reason == "AudioTooShort"
    assert inspect_clip(clip(2, channels=2)).ok
    slow = inspect_clip(clip(3, rate=100))  # 300 samples: three seconds of nothing
    assert slow.reason == "AudioInvalid" and "sample rate is 100 Hz" in slow.message
    assert inspect_clip(clip(1.5, rate=8000)).ok


def test_speaker_checks():
    assert check_speaker("af_heart", ["af_heart", "am_adam"]).ok
    assert check_speaker("nobody", ["af_heart"]).reason == "SpeakerNotFound"
    assert check_speaker("x", None).reason == "SpeakersUnknown"


def test_only_wav_and_flac_clips_are_accepted_and_silence_is_not_a_voice():
    ogg = inspect_clip(clip(3, fmt="OGG"))
    assert ogg.reason == "AudioInvalid" and "send wav or flac" in ogg.message
    silent = inspect_clip(_silence(3))
    assert silent.reason == "AudioInvalid" and "silent" in silent.message


def _silence(seconds, rate=16000):
    buf = io.BytesIO()
    sf.write(buf, np.zeros(int(seconds * rate), dtype=np.float32), rate, format="WAV")
    return buf.getvalue()
