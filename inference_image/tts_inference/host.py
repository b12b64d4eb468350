"""EngineHost: owns the engine, loads it in the background, bounds concurrency, runs syntheses.

Speech and transcription share one admission: ``admit`` waits for one of ``max_concurrency``
slots, with ``max_queue`` requests waiting, then answers 429; both count in the same
``kubetts_inference_requests_total``/``inflight``/``queued`` metrics (a pod serves one of the two).

Each synthesis runs in its own producer thread that feeds an asyncio queue at most two chunks
ahead of the client; when the client goes away the request's stop event is set and the engine stops
at its next check (between sentences, and inside engines that generate step by step).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from tts_crds.events import WordTiming
from tts_crds.http_errors import ApiError

from .engines import (
    BaseEngine,
    Engine,
    EngineError,
    ModelLoadError,
    SynthesisOptions,
    Transcriber,
    load_engine,
)
from .settings import Settings
from .words import Timed

log = logging.getLogger("tts_inference")

_LOOKAHEAD = 2  # chunks a producer may run ahead of its client


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "kubetts_inference_requests", "Speech and transcription requests by outcome", ["code"], registry=r
        )
        self.inflight = Gauge(
            "kubetts_inference_inflight_requests", "Requests being synthesised or transcribed", registry=r
        )
        self.queued = Gauge("kubetts_inference_queued_requests", "Requests waiting for a slot", registry=r)
        self.first_audio = Histogram(
            "kubetts_inference_first_audio_seconds",
            "Time from the synthesis slot to the first audio chunk",
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
        )
        self.audio_seconds = Counter("kubetts_inference_audio_seconds", "Seconds of audio produced", registry=r)
        self.synthesis_seconds = Counter(
            "kubetts_inference_synthesis_seconds", "Wall seconds spent synthesising", registry=r
        )
        self.chunks = Counter(
            "kubetts_inference_chunks", "Audio chunks (about one per sentence) synthesised", registry=r
        )
        self.cancelled = Counter(
            "kubetts_inference_cancelled_requests",
            "Syntheses and transcriptions stopped early because the client went away",
            registry=r,
        )
        self.transcribed_seconds = Counter(
            "kubetts_inference_transcribed_audio_seconds", "Seconds of audio transcribed", registry=r
        )
        self.transcription_seconds = Counter(
            "kubetts_inference_transcription_seconds", "Wall seconds spent transcribing", registry=r
        )
        self.ready = Gauge("kubetts_inference_model_ready", "1 once the model is loaded and warmed up", registry=r)


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


class Job:
    """One request's synthesis: a producer thread, a bounded hand-over queue, a stop event."""

    def __init__(
        self,
        host: EngineHost,
        engine: Engine,
        sentences: list[str],
        voice: str,
        options: SynthesisOptions,
        release: object,
    ) -> None:
        self.host = host
        self.engine = engine
        self.sentences = sentences
        self.voice = voice
        self.options = options
        self._release = release  # callable releasing the concurrency slot, exactly once
        self._released = False
        self._started = False
        self._finished = False
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._next: object = None  # an item taken from the queue ahead of its turn (``at_end``)
        self._left = False
        self._room = threading.Semaphore(_LOOKAHEAD)
        # set once the first chunk has gone out: the next sentence waits for it, so its synthesis
        # (every core, for onnxruntime) does not delay the first audio (bench/long_text.py)
        self._first_out = threading.Event()
        self.samples = 0
        #: with ``options.word_timestamps``: every word so far, in seconds of the returned audio
        self.words: list[WordTiming] = []

    def _free_slot(self) -> None:
        if not self._released:
            self._released = True
            self._release()  # type: ignore[operator]

    def _produce(self, loop: asyncio.AbstractEventLoop) -> None:
        engine, metrics, stop = self.engine, self.host.metrics, self.options.stop
        t0 = time.monotonic()
        make = engine.synthesize_timed if self.options.word_timestamps else engine.synthesize
        gen = iter(make(self.sentences, self.voice, self.options))
        try:
            for chunk in gen:
                metrics.chunks.inc()
                while not self._room.acquire(timeout=0.2):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                loop.call_soon_threadsafe(self._queue.put_nowait, chunk)
                # one sentence: nothing after it to hold back, and asking the engine at once lets
                # the end reach the response with the chunk (``at_end``), so both go out together
                while len(self.sentences) > 1 and not self._first_out.wait(timeout=0.2):
                    if stop.is_set():
                        return
        except Exception as exc:  # an engine failure mid-stream: hand it to the response
            log.exception("synthesis failed")
            loop.call_soon_threadsafe(self._queue.put_nowait, _Failed(exc))
        finally:
            close = getattr(gen, "close", None)  # generators release what they hold (e.g. a model lock)
            if close is not None:
                close()
            metrics.synthesis_seconds.inc(time.monotonic() - t0)
            if stop.is_set():
                metrics.cancelled.inc()
            with contextlib.suppress(RuntimeError):  # the loop is gone at shutdown
                loop.call_soon_threadsafe(self._queue.put_nowait, _END)
                loop.call_soon_threadsafe(self._free_slot)

    async def chunks(self) -> AsyncIterator[np.ndarray]:
        """The audio chunks in order; raises the engine's error if synthesis failed part-way."""
        loop = asyncio.get_running_loop()
        self._started = True
        threading.Thread(target=self._produce, args=(loop,), name="synthesis", daemon=True).start()
        t0 = time.monotonic()
        first = True
        rate = self.engine.sample_rate
        while True:
            if self._next is not None:
                item, self._next = self._next, None
            else:
                item = await self._queue.get()
            if item is _END:
                self._finished = True
                return
            if isinstance(item, _Failed):
                raise item.error
            self._room.release()
            if isinstance(item, tuple):
                item, timed = item
                self._add_words(timed, rate)
            assert isinstance(item, np.ndarray)
            if first:
                self.host.metrics.first_audio.observe(time.monotonic() - t0)
                first = False
            self.samples += len(item)
            self.host.metrics.audio_seconds.inc(len(item) / rate)
            yield item
            self._first_out.set()  # the response asks for more: what it had has been sent

    def at_end(self) -> bool:
        """Whether the synthesis has ended after the last chunk handed out (its end is queued), so
        that chunk's bytes can go out with the end of the response. Never waits."""
        if self._next is None:
            with contextlib.suppress(asyncio.QueueEmpty):
                self._next = self._queue.get_nowait()
        return self._next is _END

    def leave(self) -> None:
        """The client has gone: stop the synthesis (``close`` then counts the request abandoned)."""
        self._left = True
        self.options.stop.set()

    def _add_words(self, timed: list[Timed], rate: int) -> None:
        """A chunk's words, placed after the audio before it (it starts at ``self.samples``)."""
        for t in timed:
            start, end = (self.samples + t.start) / rate, (self.samples + t.end) / rate
            self.words.append(WordTiming(word=t.word, start=round(start, 3), end=round(end, 3)))

    def close(self) -> bool:
        """The response is over (finished, failed or abandoned): stop the producer, free the slot.
        True when the synthesis had not finished (the client went away)."""
        abandoned = self._left or not self._finished
        if abandoned:
            self.options.stop.set()
        if not self._started:
            self._free_slot()
        return abandoned


class EngineHost:
    """Owns the engine: loads it in the background, bounds concurrency, starts jobs."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.engine: BaseEngine = load_engine(settings.engine, settings.model_uri, settings.model_dir, settings.device)
        self.ready = False
        self.error: str | None = None
        self.load_seconds: float | None = None
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self.inflight = 0
        self.queued = 0

    async def load(self) -> None:
        t0 = time.monotonic()
        log.info("loading %s model %s", self.settings.engine, self.settings.model_uri)
        try:
            await asyncio.to_thread(self.engine.load)
            if self.settings.default_voice and isinstance(self.engine, Engine):
                self.engine.resolve_voice(self.settings.default_voice)
            await asyncio.to_thread(self.engine.warmup)
        except (ModelLoadError, EngineError, OSError, RuntimeError, ValueError) as exc:
            self.error = str(exc)
            log.error("model failed to load: %s", exc)
            if self.settings.exit_on_load_failure:
                self._give_up()
            return
        self.load_seconds = time.monotonic() - t0
        self.ready = True
        self.metrics.ready.set(1)
        log.info("model ready in %.1fs on %s (%s)", self.load_seconds, self.engine.device, self.summary())

    def summary(self) -> str:
        engine = self.engine
        if isinstance(engine, Engine):
            return f"sample rate {engine.sample_rate} Hz, {len(engine.voices())} voices"
        if isinstance(engine, Transcriber):
            return f"transcription, {len(engine.languages())} languages"
        return ", ".join(sorted(engine.capabilities))

    def speaker(self) -> Engine:
        """The engine, if it speaks; otherwise the 400 a speech request on this pod gets."""
        if isinstance(self.engine, Engine):
            return self.engine
        raise ApiError(
            400,
            f"this model ({self.settings.engine}) transcribes audio and cannot speak: "
            "send audio to /v1/audio/transcriptions",
            "not_a_speech_model",
            "model",
        )

    def transcriber(self) -> Transcriber:
        """The engine, if it transcribes; otherwise the 400 a transcription request on this pod gets."""
        if isinstance(self.engine, Transcriber):
            return self.engine
        raise ApiError(
            400,
            f"this model ({self.settings.engine}) speaks and cannot transcribe: send text to /v1/audio/speech",
            "not_a_transcription_model",
            "model",
        )

    #: set by ``python -m tts_inference`` to stop the server; ``main`` then exits 3
    on_fatal: Callable[[], None] | None = None

    def _give_up(self) -> None:
        """Record why in the termination message, then stop the server."""
        try:
            with open(self.settings.termination_log, "w") as fh:
                fh.write(f"model failed to load: {self.error}"[:4096])
        except OSError as exc:
            log.warning("cannot write the termination message to %s: %s", self.settings.termination_log, exc)
        if self.on_fatal is not None:
            self.on_fatal()

    async def close(self) -> None:
        self.ready = False
        self.metrics.ready.set(0)
        await asyncio.to_thread(self.engine.close)

    async def start(self, sentences: list[str], voice: str, options: SynthesisOptions) -> Job:
        """Wait for a synthesis slot (429 with Retry-After once the queue is full) and make the job."""
        engine = self.speaker()
        return Job(self, engine, sentences, voice, options, await self.admit())

    async def admit(self) -> Callable[[], None]:
        """Wait for a slot (429 with Retry-After once the queue is full); returns what frees it."""
        limit = self.settings.max_concurrency + self.settings.max_queue
        if self.inflight + self.queued >= limit:
            raise ApiError(
                429,
                f"server busy: {self.inflight} in flight and {self.queued} queued",
                "rate_limit_exceeded",
                headers={"Retry-After": str(self.settings.retry_after_seconds)},
            )
        self.queued += 1
        self.metrics.queued.inc()
        try:
            await self._slots.acquire()
        finally:
            self.queued -= 1
            self.metrics.queued.dec()
        self.inflight += 1
        self.metrics.inflight.inc()

        def release() -> None:
            self.inflight -= 1
            self.metrics.inflight.dec()
            self._slots.release()

        return release
