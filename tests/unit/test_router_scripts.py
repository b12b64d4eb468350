"""The pure parts of a script spoken through the speech API (ADR 0052): segments from a script and its
roles, the rate, the pauses, the refusals, and the router's encoder."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from pydantic import ValidationError
from tts_api.script_audio import Resampler, ScriptEncoder, drop_blank_frame
from tts_api.scripts import Segment, codec_rate, pause_bytes, plan_segments, preset_rate, script_problem
from tts_crds import wav
from tts_crds.http_errors import ApiError
from tts_crds.speech import SpeechRequest

MODELS = {"joe": "joe", "robot": "robot", "tts-1": "joe"}


def request(**fields) -> SpeechRequest:
    body = {
        "model": "joe",
        "input": "Alice: Hi.\nBob: Hello.",
        "roles": {"Alice": {"voice": "a"}, "Bob": {"voice": "b"}},
    }
    return SpeechRequest.model_validate({**body, **fields})


def segments(**fields) -> list[Segment]:
    return plan_segments(request(**fields), "joe", MODELS.get)


def test_each_line_is_a_segment_of_its_roles_voice_with_the_role_pause_between():
    assert segments() == [Segment("joe", "a", "Hi.", "Alice", 350), Segment("joe", "b", "Hello.", "Bob", 0)]


def test_a_role_names_its_model_by_name_or_alias():
    roles = {"Alice": {"voice": "a", "model": "tts-1"}, "Bob": {"voice": "b", "model": "robot"}}
    assert [(s.model, s.voice) for s in segments(roles=roles)] == [("joe", "a"), ("robot", "b")]


def test_the_scripts_pauses_and_paragraphs_are_the_ttsjobs():
    script = "Alice: One. [pause 800ms]\nAlice: Two.\n\nStill Alice.\nBob: Three."
    assert [(s.text, s.role, s.pause_after_ms) for s in segments(input=script)] == [
        ("One.", "Alice", 800),
        ("Two.", "Alice", 500),
        ("Still Alice.", "Alice", 350),
        ("Three.", "Bob", 0),
    ]


@pytest.mark.parametrize(
    ("script", "says"),
    [
        ("Alice: Hi.\nCarol: Hello.", "input: line 2: role 'Carol' is not a key of roles (Alice, Bob)"),
        ("Hello there.", "input: line 1: expected 'Role: text' (a role of roles"),
        ("[pause 1s]\nAlice: Hi.", "input: line 1: a pause before the first line"),
        ("Alice:\nBob: Hi.", "input: line 1: Alice's line has no text"),
        ("// only a comment", "input: there is nothing to speak"),
    ],
)
def test_a_bad_script_is_a_400_naming_input_and_the_line(script, says):
    with pytest.raises(ApiError) as err:
        segments(input=script)
    assert err.value.status == 400 and err.value.param == "input" and says in err.value.message


def test_a_role_of_an_unknown_model_is_a_404_naming_the_role():
    with pytest.raises(ApiError) as err:
        segments(roles={"Alice": {"voice": "a", "model": "nobody"}, "Bob": {"voice": "b"}})
    assert err.value.status == 404 and err.value.param == "roles.Alice.model"


@pytest.mark.parametrize(
    ("roles", "says"),
    [
        ({}, "roles is empty"),
        ({"9lives": {"voice": "a"}}, "9lives"),
        ({"Alice": {"voice": ""}}, "at least 1 character"),
    ],
)
def test_bad_roles_do_not_validate(roles, says):
    with pytest.raises(ValidationError, match=says):
        request(roles=roles)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"response_format": "aac"}, "response_format"),
        ({"timestamps": "word", "stream_format": "sse"}, "timestamps"),
        ({"ref_audio": "UklGRg=="}, "ref_audio"),
        ({"ref_text": "hello"}, "ref_text"),
    ],
)
def test_what_a_script_cannot_do_is_refused_naming_the_field(fields, param):
    problem = script_problem(request(**fields))
    assert problem is not None and problem.status == 400 and problem.param == param


@pytest.mark.parametrize("fmt", ["pcm", "wav", "mp3", "opus", "flac"])
def test_the_formats_a_script_can_have(fmt):
    assert script_problem(request(response_format=fmt)) is None


def test_the_rate_is_the_clients_or_the_first_lines_and_opus_takes_its_codecs():
    assert preset_rate("pcm", None) is None  # the first segment's model's own
    assert preset_rate("wav", 16000) == 16000
    assert preset_rate("opus", None) == 48000
    assert preset_rate("opus", 16000) == 16000 and preset_rate("opus", 22050) == 24000
    assert codec_rate("mp3", 22050) == 22050 and codec_rate("mp3", 23000) == 24000
    assert codec_rate("opus", 22050) == 24000 and codec_rate("wav", 23000) == 23000


def test_a_pause_is_that_many_samples_of_silence():
    assert pause_bytes(350, 22050) == bytes(2 * 7718)  # 7717.5 rounds to even
    assert pause_bytes(0, 22050) == b""


def test_the_wav_header_states_the_true_sizes_or_the_streaming_ones():
    data = np.arange(100, dtype="<i2").tobytes()
    samples, rate = sf.read(io.BytesIO(wav.header(16000, len(data)) + data), dtype="int16")
    assert rate == 16000 and list(samples) == list(range(100))
    assert wav.header(16000)[4:8] == b"\xff\xff\xff\xff" and wav.header(16000)[40:44] == b"\xff\xff\xff\xff"
    assert wav.with_true_sizes(wav.header(16000) + data) == wav.header(16000, len(data)) + data


def tone(seconds: float, rate: int) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 220 * t) * 8000).astype("<i2").tobytes()


def encode(fmt: str, rate: int, whole: bool, pieces: list[bytes]) -> tuple[list[bytes], bytes]:
    encoder = ScriptEncoder(fmt, rate, whole)
    out = [encoder.feed(p) for p in pieces]
    return out, b"".join(out) + encoder.finish()


def split_oddly(data: bytes) -> list[bytes]:
    """Cut at odd offsets, as chunks arrive from a socket."""
    return [data[i : i + 1001] for i in range(0, len(data), 1001)]


def test_pcm_passes_through_whole_samples_even_when_chunks_split_one():
    data = tone(1, 22050)
    out, whole = encode("pcm", 22050, False, split_oddly(data))
    assert whole == data and all(len(o) % 2 == 0 for o in out)


def test_a_streamed_wav_starts_with_the_streaming_header_and_a_download_waits_with_the_true_sizes():
    data = tone(1, 22050)
    out, streamed = encode("wav", 22050, False, split_oddly(data))
    assert out[0].startswith(wav.header(22050)) and streamed == wav.header(22050) + data
    out, whole = encode("wav", 22050, True, split_oddly(data))
    assert not any(out) and whole == wav.header(22050, len(data)) + data


@pytest.mark.parametrize(("fmt", "rate", "slack"), [("mp3", 22050, 0.12), ("opus", 48000, 0.01), ("flac", 22050, 0)])
def test_codecs_decode_to_the_length_fed(fmt, rate, slack):
    data = tone(3, rate)
    out, encoded = encode(fmt, rate, fmt == "flac", split_oddly(data))
    if fmt != "flac":
        assert sum(1 for o in out if o) >= 2, "bytes leave as the audio comes"
    samples, got_rate = sf.read(io.BytesIO(encoded), dtype="int16")
    assert got_rate == rate
    assert len(samples) / rate == pytest.approx(3.0, abs=slack + 1e-9)


def test_mp3_drops_lames_blank_first_frame():
    blank = b"\xff\xf3\x80\xc4" + bytes(204)
    frame = b"\xff\xf3\x80\xc4\x12\x34"
    assert drop_blank_frame(blank + frame) == frame
    assert drop_blank_frame(blank) is None  # the next frame has not begun
    assert drop_blank_frame(frame + frame) == frame + frame  # not blank: kept


def test_the_resampler_keeps_the_length():
    resampler = Resampler(24000, 22050)
    out = b"".join(resampler.feed(p) for p in split_oddly(tone(2, 24000))) + resampler.finish()
    assert len(out) // 2 == pytest.approx(2 * 22050, abs=2)
