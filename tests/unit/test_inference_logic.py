"""Pure logic of the inference server: sentence splitting, encoders, tempo, reference clips, engine helpers."""

import asyncio
import base64
import io
import sys

import numpy as np
import pytest
import soundfile as sf
from tts_crds import wav
from tts_crds.text import cut_at_spaces, speakable, split_sentences
from tts_inference import audio
from tts_inference.engines import EngineUnavailable, ModelLoadError, load_engine
from tts_inference.engines.espeak import wpm_and_tempo
from tts_inference.engines.pocket import resolve_config
from tts_inference.engines.torch_support import require

from tests.helpers import decode_audio, wav_bytes


# --- sentences ----------------------------------------------------------------------------------
def test_sentences_split_at_terminal_punctuation():
    assert split_sentences("Hello there, friend. How are you today? I am fine!") == [
        "Hello there, friend.",
        "How are you today?",
        "I am fine!",
    ]


def test_a_long_first_sentence_is_cut_at_a_clause_so_the_first_audio_comes_early():
    first = "When the report finally arrived on the desk of the committee, nobody had expected it to be so long."
    assert split_sentences(f"{first} Then they read it.") == [
        "When the report finally arrived on the desk of the committee,",
        "nobody had expected it to be so long.",
        "Then they read it.",
    ]
    # only the first sentence, only at the last clause mark within the limit, and only when both
    # parts stand alone
    assert split_sentences(f"Short one here. {first}") == ["Short one here.", first]
    counted = split_sentences("One, two, three, four, five, six.", first_chars=20)
    assert counted == ["One, two, three,", "four, five, six."]
    assert split_sentences("Well, " + "x" * 90 + ".", first_chars=80) == ["Well, " + "x" * 90 + "."]
    # numbers and times are not clauses; CJK marks need no space
    long_number = "It cost 1,000,000 dollars and more than anyone had imagined it could cost at 10:30 in the morning."
    assert split_sentences(long_number) == [long_number]
    assert split_sentences("今天天气很好，我们去公园吧，然后我们再去吃饭。", min_chars=3, first_chars=10) == [
        "今天天气很好，",
        "我们去公园吧，然后我们再去吃饭。",
    ]


def test_abbreviations_and_initials_do_not_end_sentences():
    text = "Dr. Smith met J. R. Jones at 5 p.m. yesterday. They talked about it."
    assert split_sentences(text) == ["Dr. Smith met J. R. Jones at 5 p.m. yesterday.", "They talked about it."]


def test_short_pieces_join_the_next_sentence():
    assert split_sentences("Hi. No! Let us begin the meeting now.") == ["Hi. No! Let us begin the meeting now."]


def test_whitespace_is_normalised_and_empty_text_has_no_sentences():
    assert split_sentences("  One sentence here.\n\n  Another one here.  ") == [
        "One sentence here.",
        "Another one here.",
    ]
    assert split_sentences(" \n\t ") == []


def test_cjk_full_stops_split_without_spaces():
    assert split_sentences("今天天气很好，我们去公园吧。明天会下雨吗？我不知道呢。", min_chars=3) == [
        "今天天气很好，我们去公园吧。",
        "明天会下雨吗？",
        "我不知道呢。",
    ]


def test_long_sentences_split_at_clauses_then_spaces():
    clause = "and the list goes on and on"
    text = ", ".join([clause] * 30) + "."
    pieces = split_sentences(text, max_chars=100)
    assert all(len(p) <= 100 for p in pieces) and len(pieces) > 5
    assert " ".join(pieces).replace(" ", "") == text.replace(" ", "")
    words = ("word " * 100).strip()
    assert all(len(p) <= 50 and not p.startswith(" ") for p in split_sentences(words, max_chars=50))


# --- encoders -----------------------------------------------------------------------------------
def tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * 8000).astype(np.int16)


@pytest.mark.parametrize(
    ("fmt", "rate", "decoded_rate"),
    [
        ("wav", 22050, 22050),
        ("flac", 22050, 22050),
        ("mp3", 24000, 24000),
        ("aac", 24000, 24000),
        ("opus", 22050, 48000),
    ],
)
def test_streamed_chunks_form_one_decodable_file(fmt, rate, decoded_rate):
    chunks = [tone(0.7, rate), tone(0.5, rate, 330), tone(0.8, rate, 550)]
    data = audio.encode_all(chunks, rate, fmt)
    decoded = decode_audio(data)
    assert decoded.sample_rate == decoded_rate
    assert abs(decoded.duration - 2.0) < 0.1, decoded.duration
    assert decoded.rms > 2000


def test_encoders_emit_bytes_per_chunk_not_only_at_the_end():
    for fmt in ("wav", "mp3", "opus", "aac", "flac", "pcm"):
        enc = audio.StreamEncoder(fmt, 24000)
        first = enc.feed(tone(1.0, 24000))
        second = enc.feed(tone(1.0, 24000))
        enc.finish()
        assert first and second, f"{fmt} held its audio back"


def test_streaming_wav_uses_the_unknown_size_convention_and_libsndfile_reads_it():
    data = audio.encode_all([tone(1.0, 16000)], 16000, "wav")
    assert data[4:8] == b"\xff\xff\xff\xff"
    samples, rate = sf.read(io.BytesIO(data))
    assert rate == 16000 and len(samples) == 16000


@pytest.mark.parametrize("fmt", ["flac", "wav"])
def test_a_whole_file_waits_for_the_end_and_its_header_states_the_true_length(fmt):
    chunks = [tone(0.7, 22050), tone(0.5, 22050, 330)]
    enc = audio.StreamEncoder(fmt, 22050, whole=True)
    assert [enc.feed(c) for c in chunks] == [b"", b""]
    data = enc.finish()
    info = sf.info(io.BytesIO(data))
    assert info.frames == sum(len(c) for c in chunks) and info.samplerate == 22050


def test_a_streamed_flac_states_no_length_which_is_why_flac_goes_whole():
    streamed = audio.encode_all([tone(1.0, 22050)], 22050, "flac")
    # STREAMINFO's 36-bit total-samples field (after the 8-byte marker and block header, 10 bytes of
    # block and frame sizes, 20 bits of rate, 3 of channels and 5 of bits per sample) is 0: unknown
    assert int.from_bytes(streamed[18:26], "big") & (2**36 - 1) == 0
    with pytest.raises(ValueError, match="too big"):
        sf.read(io.BytesIO(streamed))


def test_a_streamed_wav_gets_its_true_sizes_once_complete():
    streamed = audio.encode_all([tone(0.6, 16000), tone(0.4, 16000)], 16000, "wav")
    fixed = wav.with_true_sizes(streamed)
    start = wav.data_offset(fixed)
    assert start is not None and fixed[start:] == streamed[start:]
    assert int.from_bytes(fixed[4:8], "little") == len(fixed) - 8
    assert int.from_bytes(fixed[start - 4 : start], "little") == len(fixed) - start
    assert sf.info(io.BytesIO(fixed)).frames == 16000
    assert wav.with_true_sizes(fixed) == fixed
    for other in (b"fLaC" + bytes(40), b"RIFF" + bytes(40), b"RIFF\x04\x00\x00\x00WAVEjunk"):
        assert wav.with_true_sizes(other) == other


def test_which_formats_go_whole():
    whole = {(f, s) for f in sorted(audio.FORMATS) for s in ("audio", "sse") if audio.sent_whole(f, s)}
    assert whole == {("flac", "audio"), ("flac", "sse"), ("wav", "audio")}


def test_pcm_is_little_endian_int16_at_the_model_rate():
    samples = np.array([1, -2, 300], dtype=np.int16)
    assert audio.encode(samples, 22050, "pcm") == b"\x01\x00\xfe\xff\x2c\x01"
    assert audio.output_rate("pcm", 22050) == 22050


def test_opus_rates_are_the_ones_opus_takes():
    assert audio.output_rate("opus", 22050) == 24000
    assert audio.output_rate("opus", 16000) == 16000
    assert audio.output_rate("opus", 44100) == 48000
    assert audio.output_rate("mp3", 22050) == 22050


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="unknown format"):
        audio.StreamEncoder("ogg", 22050)


# --- tempo --------------------------------------------------------------------------------------
@pytest.mark.parametrize("factor", [0.25, 0.5, 2.0, 4.0])
def test_tempo_changes_duration_not_pitch(factor):
    rate = 22050
    src = tone(2.0, rate, 440)
    out = audio.change_tempo(src, rate, factor)
    assert abs(len(out) / rate - 2.0 / factor) < 0.1
    spectrum = np.abs(np.fft.rfft(out.astype(np.float64)))
    peak = np.argmax(spectrum) * rate / len(out)
    assert abs(peak - 440) < 10, f"pitch moved to {peak:.0f} Hz"


def test_tempo_of_one_is_untouched():
    src = tone(0.5, 16000)
    assert audio.change_tempo(src, 16000, 1.0) is src


def test_espeak_rate_is_clamped_and_the_rest_is_tempo():
    assert wpm_and_tempo(1.0) == (175, 1.0)
    wpm, tempo = wpm_and_tempo(0.25)
    assert wpm == 80 and tempo == pytest.approx(175 * 0.25 / 80)
    wpm, tempo = wpm_and_tempo(4.0)
    assert wpm == 450 and tempo == pytest.approx(700 / 450)


# --- reference clips ----------------------------------------------------------------------------
def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_reference_clip_decodes_to_mono_float():
    stereo = np.stack([np.sin(np.arange(32000) / 10), np.sin(np.arange(32000) / 10)], axis=1) * 0.5
    buf = io.BytesIO()
    sf.write(buf, stereo, 16000, format="FLAC")
    clip = audio.decode_reference(b64(buf.getvalue()), 1.0, 30.0, 10_000_000)
    assert clip.sample_rate == 16000 and clip.samples.ndim == 1 and clip.duration == pytest.approx(2.0)


@pytest.mark.parametrize("fmt", ["aac", "mp3", "opus"])
def test_reference_clips_are_wav_or_flac_as_everywhere_else(fmt):
    # the one accepted set of tts_crds.clips: the operator and the router refuse other formats too
    encoded = audio.encode(tone(2.0, 24000), 24000, fmt)
    with pytest.raises(audio.AudioInputError, match="send wav or flac"):
        audio.decode_reference(b64(encoded), 1.0, 30.0, 10_000_000)


def test_reference_data_urls_are_accepted():
    data = wav_bytes(tone(1.5, 16000), 16000)
    clip = audio.decode_reference("data:audio/wav;base64," + b64(data), 1.0, 30.0, 10_000_000)
    assert clip.duration == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("%%%not-base64%%%", "not valid base64"),
        (b64(b"RIFF but not really a wave file at all"), "not an audio file"),
        (b64(wav_bytes(tone(0.2, 16000), 16000)), "must last 1 to 30 s"),
        (b64(wav_bytes(np.zeros(32000, dtype=np.int16), 16000)), "silent"),
        (b64(wav_bytes(tone(3.0, 50), 50)), "sample rate is 50 Hz"),
    ],
)
def test_bad_reference_clips_are_refused(payload, message):
    with pytest.raises(audio.AudioInputError, match=message):
        audio.decode_reference(payload, 1.0, 30.0, 10_000_000)


def test_oversized_reference_clips_are_refused_before_decoding():
    with pytest.raises(audio.AudioInputError, match="larger than"):
        audio.decode_reference("A" * 2_000_000, 1.0, 30.0, 1_000_000)


# --- engine helpers -----------------------------------------------------------------------------
def test_phonemes_are_cut_at_spaces_within_the_context():
    ps = "hə lˈoʊ wˈɜːld " * 20
    pieces = cut_at_spaces(ps, 50)
    assert all(len(p) <= 50 for p in pieces)
    assert "".join(pieces).replace(" ", "") == ps.replace(" ", "")
    assert cut_at_spaces("", 50) == []
    assert cut_at_spaces("x" * 120, 50) == ["x" * 50, "x" * 50, "x" * 20], "no spaces: hard cuts"


def test_pocket_config_paths_resolve_against_the_model_directory(tmp_path):
    config = {
        "weights_path": "model.safetensors",
        "flow_lm": {"lookup_table": {"tokenizer_path": "tokenizer.json", "n_bins": 4}},
        "mimi": {"dtype": "float32"},
    }
    out = resolve_config(config, tmp_path)
    assert out["weights_path"] == str(tmp_path / "model.safetensors")
    assert out["flow_lm"]["lookup_table"]["tokenizer_path"] == str(tmp_path / "tokenizer.json")
    assert config["weights_path"] == "model.safetensors", "the input is not modified"


def test_pocket_config_must_not_point_at_a_hub(tmp_path):
    config = {"weights_path": "hf://kyutai/pocket-tts/model.safetensors", "flow_lm": {"lookup_table": {}}}
    with pytest.raises(ModelLoadError, match="remote files"):
        resolve_config(config, tmp_path)


def test_a_missing_torch_says_which_image_to_use(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # what an image without torch looks like
    with pytest.raises(EngineUnavailable, match=r"needs the Python package 'torch'.*CUDA inference image"):
        require("kokoro", "torch")


def test_unknown_engine_names_the_known_ones():
    with pytest.raises(Exception, match="piper, espeak, kokoro, pocket-tts"):
        load_engine("festival", "file:///x", "/models")


def test_control_characters_and_lone_surrogates_never_reach_an_engine():
    # schemathesis sent {"input": "\u0000"}: piper's phonemiser raised "embedded null character"
    # after the 200 had gone out, and the client's stream broke
    assert split_sentences("Hello\u0000 there.\u0007 How\ud800 are you today?") == [
        "Hello there.",
        "How are you today?",
    ]
    assert split_sentences("\u0000\u001f\ud800") == []
    assert speakable("tab\tnew\nline é ✓") == "tab\tnew\nline é ✓"  # whitespace and letters stay


# --- request checks (pure) ----------------------------------------------------------------------


def test_speech_checks_refuse_what_the_engine_cannot_take():
    from types import SimpleNamespace

    from tts_crds.http_errors import ApiError
    from tts_crds.speech import SpeechRequest
    from tts_inference.settings import Settings
    from tts_inference.validation import check_speech, wanted_voice

    engine = SimpleNamespace(name="piper", parameters=frozenset({"seed"}), can_clone=False)
    settings = Settings(max_input_chars=10, default_voice="joe")

    def refusal(**fields):
        with pytest.raises(ApiError) as err:
            check_speech(SpeechRequest(model="m", **fields), engine, settings)
        return err.value.code, err.value.param

    assert refusal(input="\x00\x01") == ("invalid_value", "input")
    assert refusal(input="x" * 11) == ("input_too_long", "input")
    assert refusal(input="hi", instructions="calm") == ("unsupported_parameter", "instructions")
    assert refusal(input="hi", temperature=0.5) == ("unsupported_parameter", "temperature")
    assert refusal(input="hi", ref_audio="AAAA") == ("cloning_not_supported", "ref_audio")
    assert refusal(input="hi", ref_text="words") == ("invalid_value", "ref_text")
    check_speech(SpeechRequest(model="m", input="hi", seed=1), engine, settings)
    assert wanted_voice(SpeechRequest(model="m", input="hi"), settings) == "joe"
    assert wanted_voice(SpeechRequest(model="m", input="hi", voice="amy"), settings) == "amy"


class _Job:
    """What a SpeechResponse asks of its job."""

    def __init__(self) -> None:
        from tts_inference.host import Metrics

        self.host = type("Host", (), {"metrics": Metrics()})()
        self.left = self.closed = False

    def leave(self) -> None:
        self.left = True

    def close(self) -> bool:
        self.closed = True
        return self.left


def _respond(job: _Job, pieces, receive) -> list[tuple]:
    from tts_inference.routes import SpeechResponse

    sent: list[tuple] = []

    async def send(message: dict) -> None:
        sent.append((message["type"], message.get("body"), message.get("more_body")))

    async def run() -> None:
        await SpeechResponse(job, pieces(sent), "audio/pcm", {})({"type": "http"}, receive, send)  # type: ignore[arg-type]

    asyncio.run(run())
    return sent


async def _never() -> dict:
    await asyncio.Event().wait()
    return {}


def test_a_speech_answer_sends_its_status_line_with_its_first_bytes_and_its_end_with_its_last():
    # one segment for a one-sentence answer (the router wakes once); and until the first bytes
    # nothing has gone out, so a pod killed meanwhile is retried elsewhere by the router (ADR 0046)
    seen_before_bytes: list[list] = []

    async def pieces(sent: list):
        yield b"", False  # an encoder holding its first bytes back (mp3's delay)
        seen_before_bytes.append(list(sent))
        yield b"ab", False
        yield b"cd", True

    job = _Job()
    sent = _respond(job, pieces, _never)
    assert seen_before_bytes == [[]]
    assert sent == [
        ("http.response.start", None, None),
        ("http.response.body", b"ab", True),
        ("http.response.body", b"cd", False),
    ]
    assert job.closed and not job.left


def test_a_client_heard_leaving_stops_the_synthesis_and_counts_as_499():
    async def pieces(sent: list):
        yield b"ab", False
        await asyncio.sleep(0)  # the pending receive() hears the client leave
        await asyncio.sleep(0)
        yield b"", True

    async def receive() -> dict:
        return {"type": "http.disconnect"}

    job = _Job()
    _respond(job, pieces, receive)
    assert job.left and job.closed
    assert job.host.metrics.requests.labels("499")._value.get() == 1


# --- turns on the model -------------------------------------------------------------------------
def test_model_runs_take_turns_in_the_order_they_were_asked_for():
    import threading

    from tts_inference.engines.turns import Turns

    turns, ran, release = Turns(), [], threading.Event()

    def holder() -> None:
        with turns.turn():
            ran.append("first")
            release.wait()

    def asker(name: str) -> None:
        with turns.turn():
            ran.append(name)

    threads = [threading.Thread(target=holder)]
    threads[0].start()
    while not ran:  # the first has its turn
        threading.Event().wait(0.001)
    for i, name in enumerate(("b", "c", "d")):
        threads.append(threading.Thread(target=asker, args=(name,)))
        threads[-1].start()
        while turns.waiting < i + 1:  # each queues before the next asks
            threading.Event().wait(0.001)
    assert ran == ["first"]  # nobody runs beside the one holding the turn
    release.set()
    for t in threads:
        t.join()
    assert ran == ["first", "b", "c", "d"]
    with turns.turn():  # free again: the next caller goes straight in
        assert turns.waiting == 0


def test_a_piper_run_alone_gets_the_wide_session_and_a_run_beside_another_the_narrow_one():
    import threading

    from tts_inference.engines.piper import _Sessions
    from tts_inference.engines.turns import Turns

    class Session:  # records which session each run went to
        def __init__(self, name: str, calls: list[str]) -> None:
            self.name, self.calls = name, calls

        def run(self, outputs: object, feeds: dict[str, object]) -> list[str]:
            self.calls.append(self.name)
            return [self.name]

    calls: list[str] = []
    turns = Turns(slots=2)
    sessions = _Sessions(Session("wide", calls), turns)
    with turns.turn():  # two runs at once, but the narrow session is not built yet: wide
        held, release = threading.Event(), threading.Event()

        def other() -> None:
            with turns.turn():
                held.set()
                release.wait()

        thread = threading.Thread(target=other)
        thread.start()
        held.wait()
        assert sessions.run(None, {}) == ["wide"]
        sessions.narrow = Session("narrow", calls)
        assert sessions.run(None, {}) == ["narrow"]  # beside the other run
        release.set()
        thread.join()
        assert sessions.run(None, {}) == ["wide"]  # alone again
    assert calls == ["wide", "narrow", "wide"]


def test_released_piper_sessions_refuse_runs_and_a_narrow_build_ending_after_release_is_not_kept(monkeypatch):
    """The engine's close (and the exit hook) drops both sessions, so none is left for the
    interpreter's teardown; a single-threaded session whose build ends later is dropped too."""
    import onnxruntime
    from tts_inference.engines.piper import _Sessions
    from tts_inference.engines.turns import Turns

    monkeypatch.setattr(onnxruntime, "InferenceSession", lambda *a, **k: "built")
    sessions = _Sessions("wide", Turns(slots=2))
    sessions.build_narrow(b"model", ["CPUExecutionProvider"])
    assert sessions.narrow == "built"
    sessions.release()
    assert sessions.wide is None and sessions.narrow is None
    sessions.build_narrow(b"model", ["CPUExecutionProvider"])  # the builder thread finishing late
    assert sessions.narrow is None
    with pytest.raises(RuntimeError, match="closed"):
        sessions.run(None, {})


def test_a_turn_said_to_be_coming_counts_as_busy_until_it_is_asked_for_or_called_off():
    from tts_inference.engines.turns import Turns

    turns = Turns(slots=2)
    turns.coming()
    assert turns.busy == 1
    with turns.turn(coming=True):  # it came: counted once, now as running
        assert turns.busy == 1
        turns.coming()
        assert turns.busy == 2
        turns.not_coming()  # called off (its run was cancelled before it started)
        assert turns.busy == 1
    assert turns.busy == 0


def test_two_turns_run_together_and_the_third_waits():
    import threading

    from tts_inference.engines.turns import Turns

    turns, release = Turns(slots=2), threading.Event()
    inside: list[str] = []

    def run(name: str) -> None:
        with turns.turn():
            inside.append(name)
            release.wait()

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    while len(inside) < 2:  # both are in at once
        threading.Event().wait(0.001)
    threads.append(threading.Thread(target=run, args=("c",)))
    threads[-1].start()
    while turns.waiting < 1:
        threading.Event().wait(0.001)
    assert inside == ["a", "b"]
    release.set()
    for t in threads:
        t.join()
    assert inside == ["a", "b", "c"] and turns.waiting == 0


def test_the_memory_limit_is_read_from_cgroup_v2_or_v1_and_the_smallest_of_the_hierarchy_counts(tmp_path):
    from tts_inference.engines.piper import memory_limit

    def tree(where: str, files: dict[str, str], cgroup: str):
        top = tmp_path / where
        for name, text in files.items():
            (top / name).parent.mkdir(parents=True, exist_ok=True)
            (top / name).write_text(text)
        (top / "self").write_text(cgroup)
        return memory_limit(top / "fs", top / "self")

    # v2: the pod's cgroup allows 1 GiB, the container's below it 512 MiB
    v2 = {"fs/memory.max": "max\n", "fs/pod/memory.max": "1073741824\n", "fs/pod/c/memory.max": "536870912\n"}
    assert tree("v2", v2, "0::/pod/c\n") == 512 << 20
    # v1 (hybrid): the memory controller's own hierarchy; "no limit" is a huge number
    v1 = {"fs/memory/memory.limit_in_bytes": "9223372036854771712\n", "fs/memory/k/memory.limit_in_bytes": "2147483648"}
    assert tree("v1", v1, "9:memory:/k\n0::/\n") == 2 << 30


def test_no_memory_limit_and_an_unknown_one_are_told_apart(tmp_path):
    import sys

    from tts_inference.engines.piper import memory_limit

    (tmp_path / "fs").mkdir()
    (tmp_path / "fs" / "memory.max").write_text("max\n")
    (tmp_path / "self").write_text("0::/\n")
    assert memory_limit(tmp_path / "fs", tmp_path / "self") == sys.maxsize
    assert memory_limit(tmp_path / "nothing", tmp_path / "nowhere") is None  # not known: one session
