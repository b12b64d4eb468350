"""Word timestamps and captions, the pure parts (ADR 0045): words of the text, espeak-ng's word
events and piper's phones as timed words, the silence trim, cue grouping, WebVTT and SubRip, the
request check the router and the inference server share, and the event shapes."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from tts_crds import captions, events, models
from tts_crds.speech import SpeechRequest, timestamps_problem
from tts_inference.engines import Engine
from tts_inference.words import (
    Phone,
    TextWord,
    Timed,
    from_char_events,
    from_phones,
    phones,
    phones_of_tokens,
    text_words,
    trim,
)

from tests.listen import start_errors


def test_words_are_the_tokens_as_written_and_punctuation_alone_is_none():
    got = text_words("\"Well — it's 42°, isn't it?\" she said.")
    assert [w.word for w in got] == ['"Well', "it's", "42°,", "isn't", 'it?"', "she", "said."]
    assert got[0] == TextWord('"Well', 0, 5)


def test_espeak_events_time_the_words_they_fall_in_and_words_end_at_clause_breaks():
    sentence = "The fox, 42 dogs."
    # espeak-ng names "42" twice ("forty", "two"): the first one starts the word
    spoken = [(0, 0), (4, 1000), (9, 5000), (10, 6000), (12, 8000)]
    got = from_char_events(sentence, spoken, breaks=[3000, 10000], total=12000)
    assert got == [
        Timed("The", 0, 1000),
        Timed("fox,", 1000, 3000),  # the comma's clause break, not the next word, ends it
        Timed("42", 5000, 8000),
        Timed("dogs.", 8000, 10000),
    ]


def test_a_word_without_an_event_gets_no_length_before_the_next():
    got = from_char_events("a b c", [(0, 0), (4, 900)], breaks=[], total=1000)
    assert got == [Timed("a", 0, 900), Timed("b", 900, 900), Timed("c", 900, 1000)]


PAD, SPACE, BOS, EOS = 0, 3, 1, 2
IDS = {
    PAD: "_",
    SPACE: " ",
    BOS: "^",
    EOS: "$",
    10: "f",
    11: "ɹ",
    12: "ʌ",
    13: "m",
    14: "ð",
    15: "ə",
    16: "ˈ",
    17: "d",
    18: ".",
}


def _phones(sequence: str, frames: int = 100) -> list[Phone]:
    """Phones of a made-up phonemisation; every id lasts ``frames`` samples."""
    by_phoneme = {p: i for i, p in IDS.items()}
    ids = [BOS]
    for ch in sequence:
        ids += [PAD, by_phoneme[ch]]
    ids += [PAD, EOS]
    return phones(ids, [frames] * len(ids), IDS, PAD)


def test_phones_start_at_the_blank_before_them_and_words_where_the_space_before_them_ends():
    got = _phones("ðə ˈdʌ.")
    assert [p.phoneme for p in got] == ["ð", "ə", "d", "ʌ"]  # no space, stress mark or punctuation
    assert got[0] == Phone("ð", 100, 300, True)  # the blank after "^"
    assert got[1] == Phone("ə", 300, 500, False)  # the blank before it
    assert got[2].opens_word and got[2].start == 700  # after the space: the stress mark is the word's


def test_words_run_together_are_still_told_apart():
    # espeak-ng says "from the" as one word, "fɹʌmðə": each word phonemised alone finds its phones
    spoken = _phones("fɹʌmðə dʌd")
    words = text_words("from the dud")
    got = from_phones(words, [list("fɹʌm"), list("ðə"), list("dʌd")], spoken)
    assert [t.word for t in got] == ["from", "the", "dud"]
    assert got[0].start == spoken[0].start and got[0].end == spoken[3].end
    assert got[1].start == spoken[4].start  # "ð", inside the phoneme word
    assert got[2].start == spoken[6].start and got[0].start < got[1].start < got[2].start


def test_a_mismatched_first_phoneme_still_starts_the_word_at_its_boundary():
    spoken = _phones("ðə dʌd")
    got = from_phones(text_words("the dud"), [list("ðʌ"), list("fʌd")], spoken)  # "ə"/"ʌ", "d"/"f" differ
    assert got[1].start == spoken[2].start  # the word boundary, not the first matching "ʌ"


def test_a_word_with_nothing_heard_gets_no_length_where_the_previous_ends():
    spoken = _phones("dʌd")
    got = from_phones(text_words("dud hm dud"), [list("dʌd"), [], list("mmm")], spoken)
    assert got[1] == Timed("hm", got[0].end, got[0].end) and got[2] == Timed("dud", got[0].end, got[0].end)


def test_kokoro_phones_take_its_durations_less_its_lead_and_words_begin_mid_space():
    # pad, "h", "ɪ", " ", "j", "u", pad: frames of 600 samples
    got = phones_of_tokens("hɪ ju", [5, 2, 2, 4, 2, 2, 3], 600)
    assert [p.phoneme for p in got] == ["h", "ɪ", "j", "u"]
    assert got[0].start == (5 - 3) * 600  # the first pad, less three frames
    assert got[2].opens_word and got[2].start == (5 + 2 + 2 + 2 - 3) * 600  # halfway through the space


def test_the_duration_tensor_is_found_in_a_kokoro_graph():
    from types import SimpleNamespace as N

    from tts_inference.engines.kokoro_onnx import duration_tensor

    def node(op, inputs, output):
        return N(op_type=op, input=inputs, output=[output])

    graph = N(
        node=[node("Div", ["x"], "d"), node("Round", ["d"], "r"), node("Clip", ["r"], "c"), node("Cast", ["c"], "n")]
    )
    assert duration_tensor(graph) == "n"
    assert duration_tensor(N(node=[node("Round", ["d"], "r"), node("Relu", ["r"], "y")])) is None


def test_trim_moves_ends_off_the_silence_after_a_word_and_keeps_starts():
    rate = 1000
    samples = np.zeros(1000, dtype=np.int16)
    samples[100:300] = 10000  # a word from 0.1 s to 0.3 s, then silence
    got = trim([Timed("word", 50, 600), Timed("hush", 600, 900)], samples, rate)
    assert got[0] == Timed("word", 50, 300)
    assert got[1] == Timed("hush", 600, 900)  # all silence: as it was


def test_every_engine_that_claims_word_timestamps_implements_them_and_no_other_does():
    from tts_inference.engines.espeak import EspeakEngine
    from tts_inference.engines.kokoro import KokoroEngine
    from tts_inference.engines.kokoro_onnx import KokoroOnnx
    from tts_inference.engines.kokoro_torch import KokoroTorch
    from tts_inference.engines.piper import PiperEngine
    from tts_inference.engines.pocket import PocketEngine

    classes = [EspeakEngine, KokoroEngine, KokoroOnnx, PiperEngine, PocketEngine]
    # whisper transcribes; openai-compatible is a user's server behind the bridge (ADR 0047), which
    # gives no word timings, so the router refuses timestamps for it before it wakes
    assert {c.name for c in classes} == {e.value for e in models.Engine} - {"whisper", "openai-compatible"}
    assert not models.word_timestamps("openai-compatible")
    for cls in classes:
        overrides = cls.synthesize_timed is not Engine.synthesize_timed
        assert overrides == models.word_timestamps(cls.name), cls.__name__
    # kokoro's torch layout does not time words yet: its pods refuse (times_words), ADR 0045
    assert KokoroTorch.synthesize_timed is Engine.synthesize_timed


def test_the_request_check_names_the_field_and_says_why():
    sse = SpeechRequest(model="m", input="hi", stream_format="sse", timestamps="word")
    assert timestamps_problem(sse, "piper") is None and timestamps_problem(sse, "espeak") is None
    code, message = timestamps_problem(sse, "pocket-tts") or ("", "")
    assert code == "timestamps_not_supported" and "pocket-tts" in message and "espeak, kokoro, piper" in message
    plain = SpeechRequest(model="m", input="hi", timestamps="word")
    code, message = timestamps_problem(plain, "piper") or ("", "")
    assert code == "timestamps_need_sse" and "stream_format" in message
    assert timestamps_problem(SpeechRequest(model="m", input="hi"), "pocket-tts") is None
    with pytest.raises(ValidationError):
        SpeechRequest(model="m", input="hi", timestamps="phoneme")


def test_word_events_and_done_carry_the_words():
    word = events.WordTiming(word="Hello", start=0.05, end=0.4)
    assert (
        events.SpeechWord.of(word).frame() == b'data: {"type":"speech.word","word":"Hello","start":0.05,"end":0.4}\n\n'
    )
    parsed = events.parse({"type": "speech.word", "word": "Hello", "start": 0.05, "end": 0.4})
    assert isinstance(parsed, events.SpeechWord) and parsed.word == "Hello"
    done = events.AudioDone(audio_seconds=1.0)
    assert b"words" not in done.frame()
    done.words = [word]
    assert b'"words":[{"word":"Hello","start":0.05,"end":0.4}]' in done.frame()


def _words(spec: str, step: float = 0.3) -> list[events.WordTiming]:
    return [events.WordTiming(word=w, start=i * step, end=i * step + step * 0.8) for i, w in enumerate(spec.split())]


def test_cues_end_at_sentences_and_keep_to_the_line_length():
    req = captions.CaptionsRequest(words=_words("One two three. Four five six seven eight nine ten"), max_line_chars=12)
    got = captions.cues(req)
    assert got[0].lines == ("One two", "three.")
    assert all(len(line) <= 12 for c in got for line in c.lines)
    assert all(len(c.lines) <= 2 for c in got)
    assert [w for c in got for line in c.lines for w in line.split()] == [w.word for w in req.words]


def test_cues_keep_to_the_longest_duration_and_break_at_pauses():
    long_run = captions.CaptionsRequest(words=_words("a b c d e f g h i j", step=1.0), max_cue_seconds=3.0)
    assert all(c.end - c.start <= 3.0 for c in captions.cues(long_run))
    paused = [events.WordTiming(word="before", start=0, end=0.4), events.WordTiming(word="after", start=1.5, end=2)]
    assert len(captions.cues(captions.CaptionsRequest(words=paused))) == 2


def test_webvtt_and_subrip():
    req = captions.CaptionsRequest(words=_words("Hello there. General Kenobi."))
    vtt = captions.render(req)
    assert (
        vtt
        == "WEBVTT\n\n00:00:00.000 --> 00:00:00.540\nHello there.\n\n00:00:00.600 --> 00:00:01.140\nGeneral Kenobi.\n\n"
    )
    srt = captions.render(req.model_copy(update={"format": "srt"}))
    assert srt.startswith("1\n00:00:00,000 --> 00:00:00,540\nHello there.\n\n2\n00:00:00,600 --> ")
    assert captions.timestamp(3725.4567, ",") == "01:02:05,457"


def test_start_errors_align_on_words_and_skip_what_was_misheard():
    ours = [("The", 0.0), ("42", 0.5), ("dogs", 1.0), ("barked", 1.5)]
    heard = [("the", 0.02), ("forty", 0.45), ("two", 0.7), ("frogs", 1.1), ("barked", 1.62)]
    assert start_errors(ours, heard) == pytest.approx([0.02, 0.05, 0.12])


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ({"word": "late", "start": 1.6e308, "end": 1.7e308}, "at most 86400 seconds"),
        ({"word": "odd\ud83d", "start": 0.1, "end": 0.2}, "lone surrogate"),
    ],
)
def test_captions_refuse_what_they_cannot_render(word: dict, message: str):
    # found by schemathesis: both were a 500 (clock overflow, UTF-8 encoding) before this check
    with pytest.raises(ValidationError, match=message):
        captions.CaptionsRequest(words=[{"word": "fine", "start": 0.0, "end": 0.1}, word])
