"""Pure logic of transcription: the whisper engine's device and file choices, the request checks,
and the five answer shapes (subtitle timestamps above all)."""

import math
import threading
from types import SimpleNamespace

import numpy as np
import pytest
from faster_whisper.tokenizer import _LANGUAGE_CODES
from tts_crds.captions import timestamp
from tts_crds.http_errors import ApiError
from tts_inference import audio
from tts_inference.engines import ENGINES, SPEECH, TRANSCRIPTION, Engine, Transcriber, load_engine
from tts_inference.engines.whisper import (
    FALLBACK_TEMPERATURES,
    choose_device,
    cpu_threads,
    missing_files,
    temperature_schedule,
    to_segment,
)
from tts_inference.languages import WHISPER_LANGUAGES, language_name
from tts_inference.transcript import Segment, Transcript, Word, render, to_srt, to_vtt, verbose_json
from tts_inference.validation import (
    check_granularities,
    check_language,
    check_temperature,
    check_transcription,
    check_upload,
)

from tests.helpers import wav_bytes

LANGS = frozenset(WHISPER_LANGUAGES)


def refused(call) -> ApiError:
    with pytest.raises(ApiError) as info:
        call()
    return info.value


# --- the engine: device, threads, files ---------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "gpus", "expected"),
    [
        ("auto", 0, ("cpu", "int8")),
        ("auto", 1, ("cuda", "float16")),
        ("cpu", 2, ("cpu", "int8")),
        ("cuda", 1, ("cuda", "float16")),
    ],
)
def test_device_and_compute_type_follow_the_pod(requested, gpus, expected):
    assert choose_device(requested, gpus) == expected


def test_cuda_without_a_gpu_says_so():
    from tts_inference.engines import EngineUnavailable, ModelLoadError

    with pytest.raises(EngineUnavailable, match="no CUDA GPU"):
        choose_device("cuda", 0)
    with pytest.raises(ModelLoadError, match="not one of"):
        choose_device("tpu", 0)


def test_cpu_threads_one_per_usable_cpu_within_bounds():
    assert [cpu_threads(n) for n in (0, 1, 2, 16)] == [1, 1, 2, 8]


def test_missing_files_of_a_model_directory():
    assert missing_files({"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"}) == []
    assert missing_files({"model.bin", "config.json", "tokenizer.json", "vocabulary.json"}) == []
    assert missing_files({"config.json"}) == ["model.bin", "tokenizer.json", "vocabulary.txt"]


def test_temperature_zero_means_the_fallback_schedule():
    assert temperature_schedule(0.0) == FALLBACK_TEMPERATURES
    assert temperature_schedule(0.4) == (0.4,)


def test_a_faster_whisper_segment_becomes_ours_numbered_from_zero():
    seg = SimpleNamespace(
        id=1,
        seek=0,
        start=0.0,
        end=1.5,
        text=" Hi.",
        tokens=[1, 2],
        temperature=None,
        avg_logprob=-0.2,
        compression_ratio=0.9,
        no_speech_prob=0.01,
        words=[SimpleNamespace(word=" Hi.", start=0.1, end=0.5, probability=0.9)],
    )
    ours = to_segment(seg, 0)
    assert ours.id == 0 and ours.tokens == (1, 2) and ours.temperature == 0.0
    assert ours.words == (Word(" Hi.", 0.1, 0.5),)


def test_whisper_is_registered_as_a_transcriber(tmp_path):
    assert "whisper" in ENGINES
    engine = load_engine("whisper", f"file://{tmp_path}", "/models")
    assert isinstance(engine, Transcriber) and not isinstance(engine, Engine)
    assert engine.capabilities == {TRANSCRIPTION} and engine.sample_rate == 16000
    assert load_engine("espeak", "package://espeakng-loader", "/models").capabilities == {SPEECH}


def test_whisper_refuses_a_directory_without_a_model(tmp_path):
    from tts_inference.engines import ModelLoadError

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match=r"lacks model\.bin"):
        load_engine("whisper", f"file://{tmp_path}", "/models").load()
    with pytest.raises(ModelLoadError, match="no Whisper model directory"):
        load_engine("whisper", f"file://{tmp_path}/nowhere", "/models").load()


def test_our_language_table_is_whispers():
    assert set(WHISPER_LANGUAGES) == set(_LANGUAGE_CODES)
    assert language_name("en") == "english" and language_name("yue") == "cantonese" and language_name("xx") == "xx"


# --- decoding uploads ---------------------------------------------------------------------------


def tone(seconds: float, rate: int = 22050) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


@pytest.mark.parametrize("fmt", ["wav", "mp3", "opus", "flac", "aac"])
def test_uploads_decode_to_16k_mono_float(fmt):
    data = audio.encode(audio.to_int16(tone(2.0)), 22050, fmt)
    samples = audio.decode_upload(data, 16000, 60)
    assert samples.dtype == np.float32 and abs(len(samples) / 16000 - 2.0) < 0.15


def test_stereo_uploads_are_mixed_to_mono():
    stereo = np.stack([tone(1.0, 16000), tone(1.0, 16000)], axis=1)
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, stereo, 16000, format="WAV")
    assert audio.decode_upload(buf.getvalue(), 16000, 60).ndim == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"not audio at all " * 50, "could not be decoded"),
        (wav_bytes(np.zeros(0, dtype=np.float32), 16000), "could not be decoded"),
    ],
)
def test_bad_uploads_say_why(data, message):
    with pytest.raises(audio.AudioInputError, match=message):
        audio.decode_upload(data, 16000, 60)


def test_decoding_stops_at_the_length_limit():
    with pytest.raises(audio.AudioInputError, match="longer than the 1 seconds"):
        audio.decode_upload(wav_bytes(tone(3.0, 16000), 16000), 16000, 1.0)


# --- request checks -----------------------------------------------------------------------------


def test_an_empty_form_takes_openais_defaults():
    form = check_transcription({}, LANGS, 4096)
    assert form.response_format == "json" and form.language is None and form.prompt is None
    assert form.temperature == 0.0 and form.granularities == frozenset() and not form.words


def test_a_full_form_is_parsed():
    form = check_transcription(
        {
            "model": ["whisper-1"],
            "language": ["de"],
            "prompt": [" Kubernetes, Whisper "],
            "response_format": ["verbose_json"],
            "temperature": ["0.2"],
            "timestamp_granularities[]": ["word", "segment"],
        },
        LANGS,
        4096,
    )
    assert (form.language, form.prompt, form.temperature, form.response_format) == (
        "de",
        "Kubernetes, Whisper",
        0.2,
        "verbose_json",
    )
    assert form.granularities == {"word", "segment"} and form.words


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"response_format": ["xml"]}, "response_format", "invalid_value"),
        ({"language": ["english"]}, "language", "invalid_value"),
        ({"language": ["xx"]}, "language", "invalid_value"),
        ({"temperature": ["hot"]}, "temperature", "invalid_value"),
        ({"temperature": ["1.5"]}, "temperature", "invalid_value"),
        ({"temperature": ["-0.1"]}, "temperature", "invalid_value"),
        ({"temperature": ["nan"]}, "temperature", "invalid_value"),
        ({"timestamp_granularities[]": ["word"]}, "timestamp_granularities", "invalid_value"),
        (
            {"timestamp_granularities[]": ["char"], "response_format": ["verbose_json"]},
            "timestamp_granularities",
            "invalid_value",
        ),
        ({"prompt": ["x" * 11]}, "prompt", "invalid_value"),
        ({"stream": ["true"]}, "stream", "unsupported_parameter"),
        ({"voice": ["alloy"]}, "voice", "unknown_parameter"),
    ],
)
def test_bad_fields_are_4xx_naming_the_field(fields, param, code):
    err = refused(lambda: check_transcription(fields, LANGS, 10))
    assert err.status == 400 and err.param == param and err.code == code and err.message


def test_language_accepts_case_and_region_tags():
    assert check_language("EN", LANGS) == "en"
    assert check_language("en-US", LANGS) == "en"
    assert check_language("pt_BR", LANGS) == "pt"
    assert check_language("  ", LANGS) is None


def test_temperature_bounds_are_inclusive():
    assert [check_temperature(t) for t in ("", "0", "1", "0.5")] == [0.0, 0.0, 1.0, 0.5]


def test_word_timestamps_need_verbose_json_as_openai_requires():
    assert check_granularities(["word"], "verbose_json") == {"word"}
    assert check_granularities([], "json") == frozenset()
    err = refused(lambda: check_granularities(["segment"], "srt"))
    assert "verbose_json" in err.message


def test_uploads_missing_textual_empty_or_too_large_are_refused():
    assert refused(lambda: check_upload(None, 100)).param == "file"
    assert refused(lambda: check_upload("just text", 100)).code == "invalid_value"
    assert refused(lambda: check_upload(SimpleNamespace(size=0), 100)).code == "invalid_file"
    too_big = refused(lambda: check_upload(SimpleNamespace(size=101), 100))
    assert too_big.status == 413 and too_big.code == "file_too_large"
    check_upload(SimpleNamespace(size=100), 100)


# --- answer shapes ------------------------------------------------------------------------------

TRANSCRIPT = Transcript(
    language="en",
    duration=3.2,
    segments=(
        Segment(0, 0, 0.0, 1.25, " Hello there.", (1, 2), words=(Word(" Hello", 0.0, 0.5), Word(" there.", 0.5, 1.2))),
        Segment(1, 0, 1.25, 3.1, " How are you?", (3,), words=(Word(" How", 1.3, 1.6),)),
        Segment(2, 0, 3.1, 3.1, " ", ()),
    ),
)


@pytest.mark.parametrize(
    ("seconds", "srt", "vtt"),
    [
        (0.0, "00:00:00,000", "00:00:00.000"),
        (1.25, "00:00:01,250", "00:00:01.250"),
        (61.0006, "00:01:01,001", "00:01:01.001"),
        (3723.4567, "01:02:03,457", "01:02:03.457"),
        (-0.01, "00:00:00,000", "00:00:00.000"),
        (59.9999, "00:01:00,000", "00:01:00.000"),
    ],
)
def test_subtitle_timestamps(seconds, srt, vtt):
    assert timestamp(seconds, ",") == srt and timestamp(seconds, ".") == vtt


def test_srt_numbers_cues_from_one_and_skips_silent_segments():
    assert to_srt(TRANSCRIPT) == (
        "1\n00:00:00,000 --> 00:00:01,250\nHello there.\n\n2\n00:00:01,250 --> 00:00:03,100\nHow are you?\n\n"
    )


def test_vtt_has_its_header_and_dotted_milliseconds():
    assert to_vtt(TRANSCRIPT) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.250\nHello there.\n\n00:00:01.250 --> 00:00:03.100\nHow are you?\n\n"
    )


def test_json_and_text_carry_the_joined_text():
    assert render(TRANSCRIPT, "json") == {"text": "Hello there. How are you?"}
    assert render(TRANSCRIPT, "text") == "Hello there. How are you?\n"
    assert render(Transcript("en", 1.0, ()), "json") == {"text": ""}


def test_verbose_json_has_openais_fields():
    body = verbose_json(TRANSCRIPT, {"word", "segment"})
    assert body["task"] == "transcribe" and body["language"] == "english" and body["duration"] == 3.2
    assert body["text"] == "Hello there. How are you?"
    assert set(body["segments"][0]) == {
        "id",
        "seek",
        "start",
        "end",
        "text",
        "tokens",
        "temperature",
        "avg_logprob",
        "compression_ratio",
        "no_speech_prob",
    }
    assert body["words"] == [
        {"word": "Hello", "start": 0.0, "end": 0.5},
        {"word": "there.", "start": 0.5, "end": 1.2},
        {"word": "How", "start": 1.3, "end": 1.6},
    ]
    assert body["usage"] == {"type": "duration", "seconds": math.ceil(3.2)}


def test_verbose_json_granularities_choose_segments_and_words():
    assert "words" not in verbose_json(TRANSCRIPT, ()) and "segments" in verbose_json(TRANSCRIPT, ())
    only_words = verbose_json(TRANSCRIPT, {"word"})
    assert "segments" not in only_words and len(only_words["words"]) == 3


def test_unknown_format_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown response_format"):
        render(TRANSCRIPT, "xml")


def test_transcription_options_carry_a_stop_event():
    from tts_inference.engines import TranscriptionOptions

    options = TranscriptionOptions()
    assert isinstance(options.stop, threading.Event) and not options.stop.is_set()
