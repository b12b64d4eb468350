"""The Wyoming server's pure logic: sentences from chunks, PCM as audio events, the catalogue as
``info`` and voice names as (model, voice); then one connection over real TCP with the wyoming
library's own client, against a router faked by httpx.MockTransport (the real router is in
tests/integration/test_wyoming.py)."""

from __future__ import annotations

import asyncio
import json
from functools import partial

import httpx
import pytest
from pydantic import ValidationError
from tts_wyoming.audio import PcmRelay
from tts_wyoming.catalog import Catalog, UnknownVoice, language_tag
from tts_wyoming.handler import SpeechHandler, TextStream
from tts_wyoming.router import failure_from_response
from tts_wyoming.service import Service
from tts_wyoming.settings import WyomingSettings
from tts_wyoming.text import SentenceStream
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.server import AsyncTcpServer
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped, SynthesizeVoice

MODELS = [
    {"id": "joe", "engine": "piper", "capability": "speech", "default_voice": "joe"},
    {"id": "kokoro", "engine": "kokoro", "capability": "speech", "default_voice": "af_heart"},
    {"id": "sleepy", "engine": "espeak", "capability": "speech"},
    {"id": "whisper", "engine": "whisper", "capability": "transcription"},
]
VOICES = [
    {"id": "joe", "model": "joe", "type": "builtin", "language": "en-us", "default": True},
    {"id": "af_heart", "model": "kokoro", "type": "builtin", "language": "en-us", "default": True},
    {"id": "jf_alpha", "model": "kokoro", "type": "builtin", "language": "ja"},
    {"id": "narrator", "model": "joe", "type": "speaker", "language": "en_GB"},
    {"id": "twin", "model": "joe", "type": "speaker", "language": "en"},
    {"id": "twin", "model": "kokoro", "type": "speaker", "language": "en"},
]


# --- sentences ------------------------------------------------------------------------------------


def test_sentences_complete_only_when_white_space_follows_the_end_mark():
    s = SentenceStream()
    assert s.add("The kitchen light is on") == []
    assert s.add(". It is 3.") == ["The kitchen light is on."]
    assert s.add("5 degrees outside! Anything") == ["It is 3.5 degrees outside!"]
    assert s.add(" else?") == []
    assert s.finish() == "Anything else?"
    assert s.finish() == ""


def test_abbreviations_and_initials_do_not_end_a_sentence():
    s = SentenceStream()
    assert s.add("Dr. Smith met J. R. Tolkien at noon. Then ") == ["Dr. Smith met J. R. Tolkien at noon."]
    assert s.finish() == "Then"


def test_short_sentences_wait_for_the_next_and_quotes_stay_with_theirs():
    s = SentenceStream()
    assert s.add("Hi. ") == []
    assert s.add('She said "turn it off." Done now. ') == ['Hi. She said "turn it off."']
    assert s.finish() == "Done now."  # nine characters: it waited for more, and is the last


def test_cjk_full_stops_need_no_space():
    s = SentenceStream(min_chars=2)
    assert s.add("今日は晴れです。明日は雨") == ["今日は晴れです。"]
    assert s.finish() == "明日は雨"


def test_white_space_is_normalised():
    s = SentenceStream()
    assert s.add("Line one\nstill line one.\n\nLine two") == ["Line one still line one."]
    assert s.finish() == "Line two"


# --- audio ----------------------------------------------------------------------------------------


def test_pcm_pieces_become_whole_sample_chunks_with_timestamps():
    relay = PcmRelay(22050, samples_per_chunk=4)
    start = AudioStart.from_event(relay.start())
    assert (start.rate, start.width, start.channels) == (22050, 2, 1)
    assert relay.feed(b"\x01") == []  # half a sample waits
    chunks = [AudioChunk.from_event(e) for e in relay.feed(b"\x02" + bytes(range(19)))]
    assert [len(c.audio) for c in chunks] == [8, 8, 4]  # 20 bytes: 10 samples in chunks of at most 4
    assert chunks[0].audio[:2] == b"\x01\x02"
    assert chunks[-1].timestamp == 8 * 1000 // 22050
    assert relay.samples == 10
    stop = relay.stop()
    assert AudioStop.is_type(stop.type)
    assert relay.seconds == pytest.approx(10 / 22050)


def test_an_odd_byte_at_the_end_is_dropped_not_sent():
    relay = PcmRelay(16000)
    assert [len(AudioChunk.from_event(e).audio) for e in relay.feed(b"\x00" * 5)] == [4]
    relay.stop()
    assert relay.feed(b"\x00") == []


def test_a_rate_of_zero_is_refused():
    with pytest.raises(ValueError, match="sample rate"):
        PcmRelay(0)


# --- catalogue ------------------------------------------------------------------------------------


def test_info_lists_each_voice_of_each_speech_model_with_languages_and_attribution():
    info = Catalog.build(MODELS, VOICES).info("1.2.3", "kube-tts at http://router")
    (program,) = info.tts
    assert program.supports_synthesize_streaming and program.version == "1.2.3" and program.installed
    voices = {v.name: v for v in program.voices}
    assert sorted(voices) == [
        "joe/joe",
        "joe/narrator",
        "joe/twin",
        "kokoro/af_heart",
        "kokoro/jf_alpha",
        "kokoro/twin",
        "sleepy",  # voices unknown (never woke): the model itself, speaking its default voice
    ]
    assert voices["joe/narrator"].languages == ["en-GB"]
    assert voices["kokoro/jf_alpha"].languages == ["ja"]
    assert voices["joe/joe"].attribution.name == "piper via kube-tts"
    assert "piper" in voices["joe/joe"].attribution.url
    assert voices["joe/narrator"].description == "narrator (joe, piper)"
    assert voices["sleepy"].description == "sleepy (espeak)"
    # whisper transcribes: it is no TTS voice
    assert not [v for v in voices if v.startswith("whisper")]
    # and the event survives the wire format
    assert Info.from_event(info.event()).tts[0].voices[0].name == program.voices[0].name


@pytest.mark.parametrize(
    ("voice", "expected"),
    [
        (None, ("joe", "default")),
        (SynthesizeVoice(name="kokoro/jf_alpha"), ("kokoro", "jf_alpha")),
        (SynthesizeVoice(name="kokoro/"), ("kokoro", "default")),
        (SynthesizeVoice(name="kokoro"), ("kokoro", "default")),
        (SynthesizeVoice(name="kokoro", speaker="jf_alpha"), ("kokoro", "jf_alpha")),
        (SynthesizeVoice(name="narrator"), ("joe", "narrator")),
        (SynthesizeVoice(language="ja_JP"), ("kokoro", "jf_alpha")),
        (SynthesizeVoice(language="en-US"), ("joe", "joe")),
        (SynthesizeVoice(language="en_GB"), ("joe", "narrator")),
    ],
)
def test_voice_requests_resolve_to_a_model_and_voice(voice, expected):
    assert Catalog.build(MODELS, VOICES).resolve(voice) == expected


def test_the_configured_default_model_wins_when_it_exists():
    assert Catalog.build(MODELS, VOICES, preferred="kokoro").resolve(None) == ("kokoro", "default")
    assert Catalog.build(MODELS, VOICES, preferred="gone").resolve(None) == ("joe", "default")


@pytest.mark.parametrize(
    ("voice", "message"),
    [
        (SynthesizeVoice(name="twin"), "several models"),
        (SynthesizeVoice(name="nobody"), "no model or voice is called 'nobody'"),
        (SynthesizeVoice(language="fr"), "no voice speaks 'fr'"),
    ],
)
def test_unknown_or_ambiguous_voices_say_what_exists(voice, message):
    with pytest.raises(UnknownVoice, match=message) as err:
        Catalog.build(MODELS, VOICES).resolve(voice)
    assert "joe/joe" in str(err.value) or "speaks" in message


def test_an_empty_router_has_no_default():
    with pytest.raises(UnknownVoice, match="no speech model"):
        Catalog.build([], []).resolve(None)


def test_language_tags():
    assert [language_tag(t) for t in ("en-us", "en_US", "cmn-hans-cn", "", None)] == [
        "en-US",
        "en-US",
        "cmn-hans-CN",
        None,
        None,
    ]


# --- router errors and settings -------------------------------------------------------------------


def test_router_errors_keep_their_message_and_code():
    body = json.dumps({"error": {"message": "voice 'x' not found", "code": "voice_not_found"}}).encode()
    failure = failure_from_response(400, body)
    assert (failure.text, failure.code) == ("voice 'x' not found (HTTP 400)", "voice_not_found")
    proxy = failure_from_response(502, b"<html>Bad gateway</html>")
    assert proxy.code == "http_502" and "Bad gateway" in proxy.text


def test_settings_take_the_first_key_of_a_secret_and_check_the_uri():
    settings = WyomingSettings(KUBETTS_API_KEY="sk-one\nsk-two\n", uri="tcp://0.0.0.0:10200")
    assert settings.api_key.get_secret_value() == "sk-one"
    assert settings.tcp_port() == 10200
    with pytest.raises(ValidationError, match="tcp://host:port"):
        WyomingSettings(uri="tcp://nohost")
    with pytest.raises(ValidationError, match="http"):
        WyomingSettings(KUBETTS_URL="router:8080")


# --- one connection, end to end over TCP, against a fake router -----------------------------------


def fake_router(request: httpx.Request) -> httpx.Response:
    """The router's answers, as tests/integration/test_wyoming.py sees the real one give them."""
    assert request.headers["authorization"] == "Bearer sk-test"
    if request.url.path == "/v1/models":
        return httpx.Response(200, json={"object": "list", "data": MODELS})
    if request.url.path == "/v1/audio/voices":
        return httpx.Response(200, json={"object": "list", "data": VOICES})
    body = json.loads(request.content)
    assert body["response_format"] == "pcm"
    if body["voice"] == "ghost":
        return httpx.Response(400, json={"error": {"message": "voice 'ghost' is unknown", "code": "voice_not_found"}})
    # one sample per character, sent in odd-sized pieces
    pcm = b"\x01\x00" * len(body["input"])
    return httpx.Response(200, headers={"X-Sample-Rate": "22050"}, stream=httpx.ByteStream(pcm))


@pytest.fixture
async def server():
    settings = WyomingSettings(KUBETTS_URL="http://router.test", KUBETTS_API_KEY="sk-test")
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake_router)) as http:
        service = Service(settings, http)
        tcp = AsyncTcpServer("127.0.0.1", 0)
        await tcp.start(partial(SpeechHandler, service=service))
        assert tcp._server is not None
        port = tcp._server.sockets[0].getsockname()[1]
        yield port
        await tcp.stop()
        tcp._server.close()


async def exchange(port: int, events: list[Event], until: str) -> list[Event]:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        for event in events:
            await client.write_event(event)
        got: list[Event] = []
        while True:
            event = await asyncio.wait_for(client.read_event(), 5)
            assert event is not None
            got.append(event)
            if event.type in (until, "error"):
                return got


async def test_describe_answers_info(server):
    (event,) = await exchange(server, [Describe().event()], "info")
    assert "joe/joe" in [v.name for v in Info.from_event(event).tts[0].voices]


async def test_synthesize_is_one_audio_stream(server):
    text = "Turn on the kitchen light."
    got = await exchange(server, [Synthesize(text, SynthesizeVoice(name="joe/joe")).event()], "audio-stop")
    assert got[0].type == "audio-start" and got[-1].type == "audio-stop"
    audio = b"".join(AudioChunk.from_event(e).audio for e in got if e.type == "audio-chunk")
    assert len(audio) == 2 * len(text)


async def test_streaming_speaks_sentence_by_sentence_and_ignores_the_compat_synthesize(server):
    chunks = ["The light is ", "on now. The door", " is locked. Good ", "night."]
    events = [
        SynthesizeStart(SynthesizeVoice(name="narrator")).event(),
        *(SynthesizeChunk(c).event() for c in chunks),
        Synthesize("".join(chunks)).event(),  # what clients add for servers that cannot stream
        SynthesizeStop().event(),
    ]
    got = await exchange(server, events, "synthesize-stopped")
    types = [e.type for e in got]
    # one audio stream per router request: a sentence, or the sentences that completed meanwhile
    assert 1 <= types.count("audio-start") == types.count("audio-stop") <= 3
    assert types[-1] == "synthesize-stopped"
    assert SynthesizeStopped.is_type(got[-1].type)
    samples = sum(len(AudioChunk.from_event(e).audio) // 2 for e in got if e.type == "audio-chunk")
    sentences = ["The light is on now.", "The door is locked.", "Good night."]
    assert sum(map(len, sentences)) <= samples <= len(" ".join(sentences))


async def test_a_stream_speaks_the_first_sentence_at_once_and_batches_those_that_wait():
    spoken: list[str] = []
    first_may_finish = asyncio.Event()

    async def speak_text(text: str) -> None:
        spoken.append(text)
        if len(spoken) == 1:
            await first_may_finish.wait()

    stream = TextStream(speak_text)
    stream.add("The first sentence is here. ")
    await asyncio.sleep(0)  # the speaker task takes it
    assert spoken == ["The first sentence is here."]
    stream.add("The second one follows. And a third ")  # both wait while the first is spoken
    stream.add("one closes it. ")
    first_may_finish.set()
    await stream.finish()
    assert spoken == ["The first sentence is here.", "The second one follows. And a third one closes it."]


async def test_a_stream_with_nothing_left_speaks_nothing_more():
    spoken: list[str] = []

    async def speak_text(text: str) -> None:
        spoken.append(text)

    stream = TextStream(speak_text)
    stream.add("Only this sentence is spoken. ")
    await stream.finish()
    assert spoken == ["Only this sentence is spoken."]


async def test_errors_are_error_events(server):
    (bad,) = await exchange(server, [Synthesize("Hello there.", SynthesizeVoice(name="joe/ghost")).event()], "x")
    err = Error.from_event(bad)
    assert err.code == "voice_not_found" and "ghost" in err.text
    (unknown,) = await exchange(server, [Synthesize("Hello there.", SynthesizeVoice(name="nobody")).event()], "x")
    assert Error.from_event(unknown).code == "voice_not_found"
    (early,) = await exchange(server, [SynthesizeChunk("Hello.").event()], "x")
    assert Error.from_event(early).code == "not_streaming"


async def test_an_unreachable_router_is_an_error_event():
    settings = WyomingSettings(KUBETTS_URL="http://127.0.0.1:9", KUBETTS_API_KEY="sk-test", connect_timeout=1)
    async with httpx.AsyncClient() as http:
        service = Service(settings, http)
        tcp = AsyncTcpServer("127.0.0.1", 0)
        await tcp.start(partial(SpeechHandler, service=service))
        assert tcp._server is not None
        port = tcp._server.sockets[0].getsockname()[1]
        try:
            (event,) = await exchange(port, [Synthesize("Hi.", SynthesizeVoice(name="joe/joe")).event()], "x")
            err = Error.from_event(event)
            assert err.code == "router_unreachable" and "127.0.0.1:9" in err.text
            (info,) = await exchange(port, [Describe().event()], "info")
            assert Error.from_event(info).code == "router_unreachable"
        finally:
            await tcp.stop()
            tcp._server.close()
