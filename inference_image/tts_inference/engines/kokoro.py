"""Kokoro-82M, in whichever layout the model directory holds (``kokoro_common.choose_layout``):

- the torch layout (``config.json``, ``*.pth``, ``voices/*.pt``) through the ``kokoro`` package,
  for GPUs (``kokoro_torch``);
- the ONNX layout (``*.onnx`` and kokoro-onnx voice packs such as ``voices-v1.0.bin``) through
  onnxruntime, for the CPU image, which has no torch (``kokoro_onnx``).

The engine is called ``kokoro`` either way; the layout shows in /v1/status (``details.layout``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..words import Timed
from .base import Engine, SynthesisOptions, Voice, model_location
from .kokoro_common import SAMPLE_RATE, Layout, choose_layout


def model_files(root: Path) -> list[str]:
    """The file names a layout is chosen from: the directory's own files and ``voices/*.pt``."""
    if not root.is_dir():
        return []
    names = [p.name for p in root.iterdir() if p.is_file()]
    return names + [f"voices/{p.name}" for p in (root / "voices").glob("*.pt")]


def _backend(model_uri: str, model_dir: str, device: str, root: Path, layout: Layout) -> Engine:
    if layout.kind == "torch":
        from .kokoro_torch import KokoroTorch

        return KokoroTorch(model_uri, model_dir, device, root, layout)
    from .kokoro_onnx import KokoroOnnx

    return KokoroOnnx(model_uri, model_dir, device, root, layout)


class KokoroEngine(Engine):
    """Chooses the layout at load time (the files may arrive after construction) and hands every
    call to the engine for it."""

    name = "kokoro"
    blends = True

    def __init__(self, model_uri: str, model_dir: str, device: str = "auto") -> None:
        super().__init__(model_uri, model_dir, device)
        self._impl: Engine | None = None

    def load(self) -> None:
        root = model_location(self.model_uri, self.model_dir)
        layout = choose_layout(model_files(root), torch=importlib.util.find_spec("torch") is not None)
        impl = _backend(self.model_uri, self.model_dir, self.requested_device, root, layout)
        impl.load()
        self._impl = impl

    @property
    def _engine(self) -> Engine:
        assert self._impl is not None, "load() first"
        return self._impl

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    def voices(self) -> list[Voice]:
        return self._impl.voices() if self._impl is not None else []

    @property
    def default_voice(self) -> str:
        return self._engine.default_voice

    @property
    def device(self) -> str:
        return self._impl.device if self._impl is not None else "cpu"

    def gpu_memory(self) -> dict[str, int] | None:
        return self._impl.gpu_memory() if self._impl is not None else None

    def details(self) -> dict[str, str]:
        return self._impl.details() if self._impl is not None else {}

    def close(self) -> None:
        if self._impl is not None:
            self._impl.close()

    def warmup(self) -> None:
        self._engine.warmup()

    def synthesize(self, sentences: list[str], voice: str, options: SynthesisOptions) -> Iterator[np.ndarray]:
        return self._engine.synthesize(sentences, voice, options)

    @property
    def times_words(self) -> bool:
        # the ONNX export's durations (kokoro_onnx); the torch layout does not time words yet
        return self._impl is not None and self._impl.times_words

    def synthesize_timed(
        self, sentences: list[str], voice: str, options: SynthesisOptions
    ) -> Iterator[tuple[np.ndarray, list[Timed]]]:
        return self._engine.synthesize_timed(sentences, voice, options)
