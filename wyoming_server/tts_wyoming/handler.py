"""One Wyoming connection: ``describe``, ``synthesize`` and the streaming ``synthesize-start/-chunk/-stop``.

A ``synthesize`` is one router request for the whole text (the router and its engine cut it into
sentences and stream each as it is made): ``audio-start``, ``audio-chunk``s as the PCM arrives,
``audio-stop``. In a stream, each sentence is spoken as soon as it is complete (those that
completed meanwhile together), one audio-start / audio-stop per router request, while the next
chunks keep arriving; then ``synthesize-stopped``. Any failure is an ``error`` event with a text and a code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Protocol

from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.server import AsyncEventHandler
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped, SynthesizeVoice

from .audio import PcmRelay
from .catalog import UnknownVoice
from .router import SpeechFailure
from .service import Service
from .text import SentenceStream

log = logging.getLogger(__name__)


class Writer(Protocol):
    async def __call__(self, event: Event) -> None: ...


async def speak(service: Service, text: str, voice: SynthesizeVoice | None, write: Writer) -> None:
    """Speak ``text``: audio-start, audio-chunks as they arrive, audio-stop; or an ``error`` event."""
    t0 = time.monotonic()
    try:
        model, name = await service.resolve(voice)
        async with service.router.speak(model, name, text) as speech:
            relay = PcmRelay(speech.rate, service.settings.samples_per_chunk)
            await write(relay.start())
            async for piece in speech.pcm:
                for event in relay.feed(piece):
                    await write(event)
            await write(relay.stop())
    except UnknownVoice as exc:
        await write(Error(text=str(exc), code="voice_not_found").event())
        return
    except SpeechFailure as exc:
        log.warning("speech failed (%s): %s", exc.code, exc.text)
        await write(Error(text=exc.text, code=exc.code).event())
        return
    log.info(
        "%s/%s: %.2f s of audio for %d characters in %.2f s",
        model,
        name,
        relay.seconds,
        len(text),
        time.monotonic() - t0,
    )


class TextStream:
    """A ``synthesize-start`` … ``synthesize-stop`` stream: sentences queue up, one task speaks them in order.

    A sentence is spoken as soon as it is complete; the sentences that completed while the last one
    was being spoken go to the router together, in one request (each request costs a round trip
    through the router and the pod's request setup: bench/wyoming_peers.py)."""

    def __init__(self, speak_text: Callable[[str], Awaitable[None]]) -> None:
        self.sentences = SentenceStream()
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._speak_all(speak_text), name="wyoming sentence speaker")

    async def _speak_all(self, speak_text: Callable[[str], Awaitable[None]]) -> None:
        done = False
        while not done:
            waiting = [await self._queue.get()]
            while not self._queue.empty():
                waiting.append(self._queue.get_nowait())
            done = None in waiting
            if text := " ".join(s for s in waiting if s is not None):
                await speak_text(text)

    def add(self, text: str) -> None:
        for sentence in self.sentences.add(text):
            self._queue.put_nowait(sentence)

    async def finish(self) -> None:
        if rest := self.sentences.finish():
            self._queue.put_nowait(rest)
        self._queue.put_nowait(None)
        await self._task

    def cancel(self) -> None:
        self._task.cancel()


class SpeechHandler(AsyncEventHandler):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, service: Service) -> None:
        super().__init__(reader, writer)
        self.service = service
        self.stream: TextStream | None = None

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self._describe()
        elif Synthesize.is_type(event.type):
            # inside a stream, clients send the whole text once more for servers that cannot stream: skip it
            if self.stream is None:
                synthesize = Synthesize.from_event(event)
                await speak(self.service, synthesize.text, synthesize.voice, self.write_event)
        elif SynthesizeStart.is_type(event.type):
            if self.stream is not None:
                self.stream.cancel()
            voice = SynthesizeStart.from_event(event).voice
            self.stream = TextStream(partial(speak, self.service, voice=voice, write=self.write_event))
        elif SynthesizeChunk.is_type(event.type):
            await self._chunk(SynthesizeChunk.from_event(event).text)
        elif SynthesizeStop.is_type(event.type):
            await self._stop()
        return True

    async def _describe(self) -> None:
        try:
            info = await self.service.info()
        except SpeechFailure as exc:
            await self.write_event(Error(text=exc.text, code=exc.code).event())
            return
        await self.write_event(info.event())

    async def _chunk(self, text: str) -> None:
        if self.stream is None:
            await self.write_event(Error(text="synthesize-chunk before synthesize-start", code="not_streaming").event())
            return
        self.stream.add(text)

    async def _stop(self) -> None:
        if self.stream is None:
            await self.write_event(Error(text="synthesize-stop before synthesize-start", code="not_streaming").event())
            return
        stream, self.stream = self.stream, None
        await stream.finish()
        await self.write_event(SynthesizeStopped().event())

    async def disconnect(self) -> None:
        if self.stream is not None:
            self.stream.cancel()
