"""Engines behind two small interfaces (``Engine`` speaks, ``Transcriber`` transcribes);
``load_engine`` picks one by name.

Each engine module is imported only when chosen, so an image carries only the libraries of the
engines it ships (the CPU image has no torch: a torch engine there fails to load with a clear reason).
"""

from __future__ import annotations

from .base import (
    SPEECH,
    TRANSCRIPTION,
    BaseEngine,
    Engine,
    EngineError,
    EngineUnavailable,
    ModelLoadError,
    SynthesisOptions,
    Transcriber,
    TranscriptionOptions,
    Voice,
)

ENGINES = ("piper", "espeak", "kokoro", "pocket-tts", "whisper")


def load_engine(name: str, model_uri: str, model_dir: str, device: str = "auto") -> BaseEngine:
    """Construct (not yet load) the engine called ``name``."""
    if name == "piper":
        from .piper import PiperEngine

        return PiperEngine(model_uri, model_dir, device)
    if name == "espeak":
        from .espeak import EspeakEngine

        return EspeakEngine(model_uri, model_dir, device)
    if name == "kokoro":
        from .kokoro import KokoroEngine

        return KokoroEngine(model_uri, model_dir, device)
    if name == "pocket-tts":
        from .pocket import PocketEngine

        return PocketEngine(model_uri, model_dir, device)
    if name == "whisper":
        from .whisper import WhisperEngine

        return WhisperEngine(model_uri, model_dir, device)
    raise EngineError(f"unknown engine {name!r}; this image knows {', '.join(ENGINES)}")


__all__ = [
    "ENGINES",
    "SPEECH",
    "TRANSCRIPTION",
    "BaseEngine",
    "Engine",
    "EngineError",
    "EngineUnavailable",
    "ModelLoadError",
    "SynthesisOptions",
    "Transcriber",
    "TranscriptionOptions",
    "Voice",
    "load_engine",
]
