"""The engine interfaces: load once, then either synthesise one sentence at a time, as chunks
(``Engine``, capability ``speech``), or transcribe a clip (``Transcriber``, capability ``transcription``).

A pod serves one engine, so its capability is fixed by the engine's class: the server refuses the
other kind of request up front (``not_a_speech_model``, ``not_a_transcription_model``) and
``/v1/status`` says which it is.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tts_crds import aliases, blends

from ..audio import Clip
from ..transcript import Transcript
from ..words import Timed

SPEECH = "speech"
TRANSCRIPTION = "transcription"


class EngineError(Exception):
    """The engine cannot do what was asked (a client error: unknown voice, unsupported option)."""


class ModelLoadError(Exception):
    """The model could not be loaded; the server stays unready and says why."""


class EngineUnavailable(ModelLoadError):
    """The engine's libraries are not installed in this image (e.g. a torch engine in the CPU image)."""


@dataclass(frozen=True)
class Voice:
    id: str
    name: str
    language: str


@dataclass(frozen=True)
class SynthesisOptions:
    """What a request asks of one synthesis beyond text and voice."""

    speed: float = 1.0
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    reference: Clip | None = None  # a decoded ref_audio clip, for engines that clone
    reference_text: str | None = None
    word_timestamps: bool = False  # "timestamps": "word": the server calls synthesize_timed
    # set when the client has gone: engines that synthesise in several steps check it between steps
    stop: threading.Event = field(default_factory=threading.Event, compare=False)


def model_location(model_uri: str, model_dir: str) -> Path:
    """Where a model's files are: ``file:///path`` is a local directory; ``hf://`` and ``pvc://``
    sources are fetched or mounted into the model directory by the pod spec."""
    scheme, _, rest = model_uri.partition("://")
    if scheme == "file":
        return Path("/" + rest.lstrip("/"))
    return Path(model_dir)


class BaseEngine(abc.ABC):
    """What every engine shares: loading, the device, status facts, release."""

    name: str = ""
    #: what a pod with this engine serves: {"speech"} or {"transcription"}
    capabilities: frozenset[str] = frozenset()
    #: (speech) takes ref_audio (and possibly ref_text) to speak in a voice heard once
    can_clone: bool = False
    #: (speech) optional sampling parameters the engine honours: a subset of {"temperature", "top_p", "seed"}
    parameters: frozenset[str] = frozenset()

    def __init__(self, model_uri: str, model_dir: str, device: str = "auto") -> None:
        self.model_uri = model_uri
        self.model_dir = model_dir
        self.requested_device = device

    @abc.abstractmethod
    def load(self) -> None:
        """Load the model (blocking; called once in a worker thread)."""

    @property
    @abc.abstractmethod
    def sample_rate(self) -> int:
        """Speech: the rate audio is made at. Transcription: the rate clips are resampled to."""

    @abc.abstractmethod
    def warmup(self) -> None:
        """One real run, so the first request does not pay for lazy initialisation (and readiness is honest)."""

    @property
    def device(self) -> str:
        return "cpu"

    def gpu_memory(self) -> dict[str, int] | None:
        """``{"used_bytes", "total_bytes", "reserved_bytes"}`` when the model sits on a GPU."""
        return None

    def details(self) -> dict[str, str]:
        """Engine-specific facts for /v1/status (e.g. which phonemiser runs)."""
        return {}

    def close(self) -> None:  # noqa: B027 (optional hook: engines without resources keep the default)
        """Release the model (and GPU memory) at shutdown."""


class Engine(BaseEngine):
    """A speech engine: voices in, int16 audio out."""

    capabilities = frozenset({SPEECH})
    #: voices are style vectors that mix: ``voice`` may be a blend such as ``a(0.7)+b(0.3)`` (ADR 0042)
    blends: bool = False

    @abc.abstractmethod
    def voices(self) -> list[Voice]: ...

    @property
    def default_voice(self) -> str:
        return self.voices()[0].id

    def voice_aliases(self) -> dict[str, str]:
        """OpenAI's voice names over this model's voices: the router's default mapping (``tts_crds.aliases``),
        applied here when the router sent an alias because it had not seen the model's voices yet."""
        return aliases.default_voice_aliases([(v.id, v.language) for v in self.voices()], self.default_voice)

    def resolve_voice(self, voice: str) -> str:
        """A voice id (or, for engines that blend, a normalised blend) for a request's ``voice``."""
        if voice in ("", "default"):
            return self.default_voice
        ids = {v.id for v in self.voices()}
        if voice in ids:
            return voice
        if blends.is_blend(voice):
            return self._blend(voice, ids)
        alias = self.voice_aliases().get(voice)
        if alias is None:
            raise EngineError(f"unknown voice {voice!r}; this model has: {', '.join(v.id for v in self.voices())}")
        return alias

    def _blend(self, voice: str, ids: set[str]) -> str:
        if not self.blends:
            raise EngineError(f"engine {self.name} cannot blend voices ({voice!r}); name one voice")
        mapped = self.voice_aliases()
        try:
            blend = blends.parse(voice).renamed(lambda v: v if v in ids else mapped.get(v, v))
            blends.check_voices(blend, ids)
        except blends.BlendError as exc:
            raise EngineError(f"{exc}; this model has: {', '.join(sorted(ids))}") from exc
        return blend.canonical()

    def warmup(self) -> None:
        """One synthesis so the first real request does not pay for lazy initialisation."""
        for _ in self.synthesize(["Warming up."], self.default_voice, options=SynthesisOptions()):
            pass

    def validate(self, voice: str, options: SynthesisOptions) -> str:
        """Check a request before any audio is sent (raise EngineError for a 400); return the voice to use."""
        return self.resolve_voice(voice)

    @abc.abstractmethod
    def synthesize(self, sentences: list[str], voice: str, options: SynthesisOptions) -> Iterator[np.ndarray]:
        """Yield mono int16 audio at ``sample_rate``: at least one chunk per sentence, in order, each as
        soon as it is ready. Per-request set-up (a cloned voice) happens once, before the first one.
        Stop early once ``options.stop`` is set."""

    @property
    def times_words(self) -> bool:
        """Whether this engine, with this model, can time words (:meth:`synthesize_timed`)."""
        return type(self).synthesize_timed is not Engine.synthesize_timed

    def synthesize_timed(
        self, sentences: list[str], voice: str, options: SynthesisOptions
    ) -> Iterator[tuple[np.ndarray, list[Timed]]]:
        """As :meth:`synthesize`, one chunk per sentence, each with its words timed in samples from the
        chunk's start. The engines ``tts_crds.models.WORD_TIMESTAMPS`` names override it (ADR 0045)."""
        raise EngineError(f"engine {self.name} cannot time words")


@dataclass(frozen=True)
class TranscriptionOptions:
    """What a transcription request asks beyond the audio (already checked by ``validation``)."""

    language: str | None = None  # None: Whisper detects it
    prompt: str | None = None
    temperature: float = 0.0
    word_timestamps: bool = False
    # set when the client has gone: the transcriber stops between segments
    stop: threading.Event = field(default_factory=threading.Event, compare=False)


class Transcriber(BaseEngine):
    """A transcription engine: mono float32 audio at ``sample_rate`` in, a ``Transcript`` out."""

    capabilities = frozenset({TRANSCRIPTION})

    @property
    def sample_rate(self) -> int:
        return 16000  # Whisper's: every upload is resampled to it

    @abc.abstractmethod
    def languages(self) -> frozenset[str]:
        """The language codes a request may name."""

    @abc.abstractmethod
    def transcribe(self, samples: np.ndarray, options: TranscriptionOptions) -> Transcript:
        """Transcribe the clip (blocking). Once ``options.stop`` is set, return what is done so far."""

    def warmup(self) -> None:
        """Transcribe a second of a quiet tone: loads the kernels a first request would otherwise wait for."""
        t = np.arange(self.sample_rate) / self.sample_rate
        tone = (0.05 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        self.transcribe(tone, TranscriptionOptions(language="en"))
