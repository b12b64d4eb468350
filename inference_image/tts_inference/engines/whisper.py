"""Whisper through faster-whisper (CTranslate2): a transcription engine, not a speech engine.

The model directory holds the CTranslate2 layout (``model.bin``, ``config.json``, ``tokenizer.json``,
``vocabulary.*``); the cpu image bakes Whisper base at
``file:///usr/local/share/kube-tts/models/faster-whisper-base`` (``tts_inference.weights``). Nothing
is downloaded at run time. int8 on the CPU (a quarter of float32's memory, about twice as fast),
float16 on a CUDA GPU (what its tensor cores run; int8 there saves memory, not time).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..transcript import Segment, Transcript, Word
from .base import EngineUnavailable, ModelLoadError, Transcriber, TranscriptionOptions, model_location

#: what ``WhisperModel`` reads from a converted model directory (vocabulary.txt or .json)
REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")
#: faster-whisper's fallback: at temperature 0, a window that decodes badly is tried again hotter
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
BEAM_SIZE = 5


def choose_device(requested: str, cuda_devices: int) -> tuple[str, str]:
    """``(device, compute_type)`` for the requested device (auto, cpu, cuda) on a pod where
    CTranslate2 sees ``cuda_devices`` GPUs: float16 on CUDA, int8 on the CPU."""
    if requested not in ("auto", "cpu", "cuda"):
        raise ModelLoadError(f"device {requested!r} is not one of auto, cpu, cuda")
    if requested == "cuda" and cuda_devices == 0:
        raise EngineUnavailable("device 'cuda' was requested but CTranslate2 sees no CUDA GPU in this pod")
    if requested == "cpu" or cuda_devices == 0:
        return "cpu", "int8"
    return "cuda", "float16"


def cpu_threads(usable_cpus: int) -> int:
    """CTranslate2's intra-op threads: one per CPU the pod may use (its default of 4 oversubscribes a
    2-CPU pod), at most 8, where returns flatten."""
    return max(1, min(usable_cpus, 8))


def missing_files(present: set[str]) -> list[str]:
    """The files a converted Whisper directory lacks, given the names it holds."""
    missing = [name for name in REQUIRED_FILES if name not in present]
    if not present & {"vocabulary.txt", "vocabulary.json"}:
        missing.append("vocabulary.txt")
    return missing


def temperature_schedule(temperature: float) -> tuple[float, ...]:
    """OpenAI's meaning: 0 lets the model raise the temperature where decoding fails (the fallback
    schedule); any other value is used as it is."""
    return FALLBACK_TEMPERATURES if temperature == 0 else (temperature,)


def to_segment(seg: Any, index: int) -> Segment:
    """A faster-whisper ``Segment`` as ours (plain floats, tuples), numbered from 0 as OpenAI's are
    (faster-whisper counts from 1)."""
    return Segment(
        id=index,
        seek=int(seg.seek),
        start=float(seg.start),
        end=float(seg.end),
        text=str(seg.text),
        tokens=tuple(int(t) for t in seg.tokens),
        temperature=float(seg.temperature or 0.0),
        avg_logprob=float(seg.avg_logprob),
        compression_ratio=float(seg.compression_ratio),
        no_speech_prob=float(seg.no_speech_prob),
        words=tuple(Word(str(w.word), float(w.start), float(w.end)) for w in seg.words or ()),
    )


class WhisperEngine(Transcriber):
    name = "whisper"

    def __init__(self, model_uri: str, model_dir: str, device: str = "auto") -> None:
        super().__init__(model_uri, model_dir, device)
        self._model: Any = None
        self._device = "cpu"
        self._compute_type = "int8"

    def _directory(self) -> Path:
        root = model_location(self.model_uri, self.model_dir)
        if not root.is_dir():
            raise ModelLoadError(f"no Whisper model directory at {root} (give file:///path/to/faster-whisper-base)")
        missing = missing_files({p.name for p in root.iterdir()})
        if missing:
            raise ModelLoadError(f"{root} is not a CTranslate2 Whisper model: it lacks {', '.join(missing)}")
        return root

    def load(self) -> None:
        try:
            import ctranslate2
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise EngineUnavailable(f"engine 'whisper' needs faster-whisper, which this image lacks ({exc})") from exc
        root = self._directory()
        self._device, self._compute_type = choose_device(self.requested_device, ctranslate2.get_cuda_device_count())
        try:
            self._model = WhisperModel(
                str(root),
                device=self._device,
                compute_type=self._compute_type,
                cpu_threads=cpu_threads(len(os.sched_getaffinity(0))),
                local_files_only=True,
            )
        except (OSError, RuntimeError, ValueError) as exc:
            raise ModelLoadError(f"cannot load Whisper model {root}: {exc}") from exc

    @property
    def device(self) -> str:
        return self._device

    def details(self) -> dict[str, str]:
        return {"compute_type": self._compute_type}

    def close(self) -> None:
        self._model = None

    def languages(self) -> frozenset[str]:
        assert self._model is not None, "load() first"
        return frozenset(self._model.supported_languages)

    def transcribe(self, samples: np.ndarray, options: TranscriptionOptions) -> Transcript:
        assert self._model is not None, "load() first"
        segments, info = self._model.transcribe(
            np.ascontiguousarray(samples, dtype=np.float32),
            language=options.language,
            initial_prompt=options.prompt or None,
            temperature=list(temperature_schedule(options.temperature)),
            beam_size=BEAM_SIZE,
            word_timestamps=options.word_timestamps,
            vad_filter=False,
        )
        done: list[Segment] = []
        for seg in segments:  # lazy: each step decodes one 30-second window
            done.append(to_segment(seg, len(done)))
            if options.stop.is_set():
                break
        return Transcript(language=str(info.language), duration=float(info.duration), segments=tuple(done))
