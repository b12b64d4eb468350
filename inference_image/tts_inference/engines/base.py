"""The engine interface: load once, then synthesise text sentence by sentence."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


class EngineError(Exception):
    """The engine cannot do what was asked (a client error: unknown voice, unsupported option)."""


class ModelLoadError(Exception):
    """The model could not be loaded; the server stays unready and says why."""


@dataclass(frozen=True)
class Voice:
    id: str
    name: str
    language: str


class Engine(abc.ABC):
    name: str = ""

    def __init__(self, model_uri: str, model_dir: str) -> None:
        self.model_uri = model_uri
        self.model_dir = model_dir

    @abc.abstractmethod
    def load(self) -> None:
        """Load the model (blocking; called once in a worker thread)."""

    @property
    @abc.abstractmethod
    def sample_rate(self) -> int: ...

    @abc.abstractmethod
    def voices(self) -> list[Voice]: ...

    @property
    def default_voice(self) -> str:
        return self.voices()[0].id

    @property
    def device(self) -> str:
        return "cpu"

    def resolve_voice(self, voice: str) -> str:
        if voice in ("", "default"):
            return self.default_voice
        if voice not in {v.id for v in self.voices()}:
            raise EngineError(f"unknown voice {voice!r}; this model has: {', '.join(v.id for v in self.voices())}")
        return voice

    @abc.abstractmethod
    def synthesize(self, text: str, voice: str, speed: float) -> Iterator[np.ndarray]:
        """Yield mono int16 audio at ``sample_rate``, one chunk per sentence, as soon as each is ready."""
