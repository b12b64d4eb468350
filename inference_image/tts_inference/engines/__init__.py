"""Engines behind one small interface; ``load_engine`` picks one by name."""

from __future__ import annotations

from .base import Engine, EngineError, ModelLoadError, Voice


def load_engine(name: str, model_uri: str, model_dir: str) -> Engine:
    """Construct (not yet load) the engine called ``name``."""
    if name == "piper":
        from .piper import PiperEngine

        return PiperEngine(model_uri, model_dir)
    raise EngineError(f"unknown engine {name!r}")


__all__ = ["Engine", "EngineError", "ModelLoadError", "Voice", "load_engine"]
