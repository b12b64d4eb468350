"""The Wyoming server on the local cluster, spoken to with the wyoming library's own client
(``AsyncTcpClient``), as Home Assistant speaks to it: ``make up`` maps it to KUBETTS_WYOMING_URI.

describe lists the models' voices; synthesize and the streaming synthesize-start/-chunk/-stop
come back as PCM that Whisper understands (the intelligibility check of
test_intelligibility.py); a bad voice is an ``error`` event; and a model at zero replicas wakes
and speaks through Wyoming.
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlparse

import pytest
from tts_devcluster.layout import Layout
from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

from tests.helpers import eventually
from tests.listen import SENTENCES, listener, wer

from .conftest import Kube, Models, Router, tts_deployment, wait_router_sees
from .test_intelligibility import PIPER_WER_MAX

pytestmark = [pytest.mark.integration]


@dataclass
class Heard:
    """What one exchange brought back: every event, the PCM, and when the first audio came."""

    events: list[Event] = field(default_factory=list)
    pcm: bytearray = field(default_factory=bytearray)
    rate: int = 0
    first_audio: float | None = None
    seconds: float = 0.0
    t0: float = field(default_factory=time.monotonic)

    def types(self) -> list[str]:
        return [e.type for e in self.events]

    def wav(self) -> bytes:
        out = io.BytesIO()
        with wave.open(out, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.rate)
            w.writeframes(bytes(self.pcm))
        return out.getvalue()

    @property
    def error(self) -> Error | None:
        return next((Error.from_event(e) for e in self.events if Error.is_type(e.type)), None)


@pytest.fixture(scope="module")
def wyoming(router: Router, layout: Layout) -> tuple[str, int]:
    """Where .devcluster/env says the Wyoming server is (KUBETTS_WYOMING_URI, beside KUBETTS_URL)."""
    exported = dict(
        line.removeprefix("export ").split("=", 1) for line in layout.env_file.read_text().splitlines() if "=" in line
    )
    assert exported["KUBETTS_URL"] == router.url
    uri = urlparse(exported["KUBETTS_WYOMING_URI"])
    assert uri.scheme == "tcp" and uri.hostname and uri.port
    return uri.hostname, uri.port


@pytest.fixture(scope="module")
def hear() -> Callable[[bytes, str], str]:
    return listener().transcribe


async def read_until(client: AsyncTcpClient, heard: Heard, until: str, wait: float = 120) -> None:
    """Read events into ``heard`` until an ``until`` (or ``error``) event."""
    while True:
        event = await asyncio.wait_for(client.read_event(), wait)
        assert event is not None, f"the server closed the connection after {heard.types()}"
        heard.events.append(event)
        if AudioStart.is_type(event.type):
            heard.rate = AudioStart.from_event(event).rate
        elif AudioChunk.is_type(event.type):
            heard.first_audio = heard.first_audio or time.monotonic() - heard.t0
            heard.pcm += AudioChunk.from_event(event).audio
        if event.type in (until, "error"):
            heard.seconds = time.monotonic() - heard.t0
            return


async def exchange(where: tuple[str, int], events: list[Event], until: str, wait: float = 120) -> Heard:
    """Send ``events``, read until an ``until`` (or ``error``) event."""
    heard = Heard()
    async with AsyncTcpClient(*where) as client:
        for event in events:
            await client.write_event(event)
        await read_until(client, heard, until, wait)
    return heard


async def test_describe_lists_the_models_voices_with_languages_and_attribution(wyoming, speaker: str):
    # the router learns a model's built-in voices from its ready pod, a moment after it is ready
    deadline = time.monotonic() + 30
    while True:
        heard = await exchange(wyoming, [Describe().event()], "info")
        (program,) = Info.from_event(heard.events[-1]).tts
        mine = [v for v in program.voices if v.name.startswith(f"{speaker}/")]
        if mine or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    assert program.name == "kube-tts" and program.supports_synthesize_streaming
    assert mine, [v.name for v in program.voices]
    for voice in mine:
        assert voice.languages == ["en-US"], voice
        assert voice.attribution.name == "piper via kube-tts"
    # transcription models are no voices
    assert not [v for v in program.voices if v.description and "whisper" in v.description]


async def test_synthesize_speaks_what_whisper_understands(wyoming, speaker: str, hear, capsys):
    voice = SynthesizeVoice(name=speaker)
    heard_texts = []
    for sentence in SENTENCES[:6]:
        heard = await exchange(wyoming, [Synthesize(sentence, voice).event()], "audio-stop")
        assert heard.error is None, heard.error
        types = heard.types()
        assert types[0] == "audio-start" and types[-1] == "audio-stop" and types.count("audio-chunk") > 1
        assert heard.rate == 22050  # piper's joe, as the router's pcm carries it (X-Sample-Rate)
        assert len(heard.pcm) / 2 / heard.rate > 1.0
        heard_texts.append(hear(heard.wav(), "en"))
    score = wer(list(SENTENCES[:6]), heard_texts)
    with capsys.disabled():
        print(f"\n# Wyoming synthesize through {speaker}: WER {score:.3f}: {heard_texts}")
    assert score <= PIPER_WER_MAX, heard_texts


async def test_streaming_speaks_each_sentence_as_it_completes(wyoming, speaker: str, hear):
    first, rest = SENTENCES[6], " ".join(SENTENCES[7:9])
    heard = Heard()
    async with AsyncTcpClient(*wyoming) as client:
        await client.write_event(SynthesizeStart(SynthesizeVoice(name=speaker)).event())
        for word in f"{first} {rest}".split(" ")[: len(first.split()) + 2]:  # the first sentence and two words
            await client.write_event(SynthesizeChunk(word + " ").event())
        # the first sentence is complete: its audio comes while the stream is still open
        await read_until(client, heard, "audio-chunk")
        assert heard.error is None, heard.error
        for word in f"{first} {rest}".split(" ")[len(first.split()) + 2 :]:
            await client.write_event(SynthesizeChunk(word + " ").event())
        await client.write_event(Synthesize(f"{first} {rest}").event())  # Home Assistant's compat synthesize
        await client.write_event(SynthesizeStop().event())
        await read_until(client, heard, "synthesize-stopped")
    assert heard.error is None, heard.error
    types = heard.types()
    # the first sentence at once; the rest in one or two more requests (those completed meanwhile together)
    assert 2 <= types.count("audio-start") == types.count("audio-stop") <= 3, types
    assert types[-1] == "synthesize-stopped"
    got = hear(heard.wav(), "en")
    assert wer(f"{first} {rest}", got) <= PIPER_WER_MAX, got


async def test_a_bad_voice_or_model_is_an_error_event(wyoming, speaker: str):
    bad_voice = await exchange(wyoming, [Synthesize("Hello.", SynthesizeVoice(name=f"{speaker}/nobody")).event()], "x")
    assert bad_voice.error is not None and bad_voice.error.code == "voice_not_found", bad_voice.events
    assert "nobody" in bad_voice.error.text
    bad_model = await exchange(wyoming, [Synthesize("Hello.", SynthesizeVoice(name="no-such-model/x")).event()], "x")
    assert bad_model.error is not None and bad_model.error.code == "model_not_found"
    unknown = await exchange(wyoming, [Synthesize("Hello.", SynthesizeVoice(name="no-such-voice")).event()], "x")
    assert unknown.error is not None and unknown.error.code == "voice_not_found"
    assert speaker in unknown.error.text  # it names what exists


async def test_a_model_at_zero_wakes_and_speaks_through_wyoming(wyoming, models: Models, router: Router, kube: Kube):
    name = f"wyo-nap-{uuid.uuid4().hex[:5]}"
    models.created.append(name)
    kube.apply(tts_deployment(name, replicas=0), router.namespace)  # created asleep
    wait_router_sees(router, name, ready=False)
    assert not kube.list("pods", router.namespace, f"tts.kubetts.io/deployment={name}")
    heard = await exchange(
        wyoming,
        [Synthesize("I was asleep, and now I speak.", SynthesizeVoice(name=name)).event()],
        "audio-stop",
        wait=300,
    )
    assert heard.error is None, heard.error
    assert len(heard.pcm) / 2 / heard.rate > 1.0
    eventually(
        lambda: int(kube.get("ttsdeployment", name, router.namespace)["spec"]["replicas"]) >= 1,
        timeout=10,
        what="replicas raised",
    )
    print(f"\nwoke from zero and spoke through Wyoming: first audio after {heard.first_audio:.1f} s")
