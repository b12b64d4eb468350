"""pocket-tts (Kyutai, torch): zero-shot voice cloning from a reference clip; weights from the model directory.

Model directory: ``config.yaml`` in pocket-tts's config schema (its ``weights_path`` and
``lookup_table.tokenizer_path`` relative to the directory, e.g. ``model.safetensors`` and
``tokenizer.json``), and optionally ``voices/<id>.wav|flac|mp3`` (reference clips, encoded once at
load) or ``voices/<id>.safetensors`` (voice states pocket-tts exported). A request clones from its
``ref_audio`` when it has one; ``ref_text`` is accepted and unused (pocket-tts needs no transcript).

pocket-tts generation is stateful and not thread-safe: one lock serialises requests on a model.
It has no speed control of its own; speed is applied afterwards as a pitch-preserving tempo change.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..audio import Clip, change_tempo, decode_clip, resample, to_int16
from .base import EngineError, ModelLoadError, SynthesisOptions, Voice, model_location
from .torch_support import TorchEngine

log = logging.getLogger(__name__)

_CLIP_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")


def resolve_config(config: dict[str, Any], root: Path) -> dict[str, Any]:
    """Make the local file paths of a pocket-tts config absolute against the model directory."""

    def local(path: Any) -> Any:
        if isinstance(path, str) and "://" not in path and not os.path.isabs(path):
            return str(root / path)
        return path

    out = dict(config)
    for key in ("weights_path", "weights_path_without_voice_cloning"):
        out[key] = local(out.get(key))
    flow = dict(out.get("flow_lm") or {})
    flow["weights_path"] = local(flow.get("weights_path"))
    table = dict(flow.get("lookup_table") or {})
    table["tokenizer_path"] = local(table.get("tokenizer_path"))
    flow["lookup_table"] = table
    out["flow_lm"] = flow
    mimi = dict(out.get("mimi") or {})
    mimi["weights_path"] = local(mimi.get("weights_path"))
    out["mimi"] = mimi
    remote = [p for p in (out["weights_path"], table["tokenizer_path"]) if isinstance(p, str) and "://" in p]
    if remote:
        raise ModelLoadError(f"config.yaml points at remote files {remote}; pods read weights from the model directory")
    return out


class PocketEngine(TorchEngine):
    name = "pocket-tts"
    packages = ("pocket_tts",)
    can_clone = True
    parameters = frozenset({"temperature", "seed"})

    def __init__(self, model_uri: str, model_dir: str, device: str = "auto") -> None:
        super().__init__(model_uri, model_dir, device)
        self._states: dict[str, Any] = {}
        self._default_temp = 0.3
        self._lock = threading.Lock()

    def load(self) -> None:
        self._start_torch()
        from pocket_tts.models.tts_model import TTSModel

        root = model_location(self.model_uri, self.model_dir)
        config_path = root / "config.yaml"
        if not config_path.exists():
            raise ModelLoadError(f"{root} has no config.yaml (pocket-tts's config schema, paths relative to it)")
        try:
            config = resolve_config(yaml.safe_load(config_path.read_text()), root)
        except yaml.YAMLError as exc:
            raise ModelLoadError(f"config.yaml does not parse: {exc}") from exc
        # pocket-tts takes a config path: write the resolved one to the pod's writable /tmp
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump(config, f)
        try:
            model = TTSModel.load_model(config=f.name)
        except (OSError, RuntimeError, ValueError, KeyError, AssertionError) as exc:
            raise ModelLoadError(f"cannot load pocket-tts model from {root}: {exc}") from exc
        finally:
            os.unlink(f.name)
        self._model = model.to(self._device).eval()
        self._default_temp = float(model.temp)
        for path in sorted((root / "voices").glob("*")):
            try:
                if path.suffix == ".safetensors":
                    self._states[path.stem] = model.get_state_for_audio_prompt(path)
                elif path.suffix in _CLIP_SUFFIXES:
                    self._states[path.stem] = self._state_for(decode_clip(path.read_bytes()))
            except (OSError, RuntimeError, ValueError) as exc:
                raise ModelLoadError(f"cannot prepare voice {path.name}: {exc}") from exc

    def _state_for(self, clip: Clip) -> Any:
        rate = self._model.sample_rate
        samples = resample(clip.samples.astype(np.float32), clip.sample_rate, rate)
        tensor = self._torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)).reshape(1, -1)
        return self._model.get_state_for_audio_prompt(tensor.to(self._device))

    @property
    def sample_rate(self) -> int:
        return int(self._model.sample_rate) if self._model is not None else 24000

    def voices(self) -> list[Voice]:
        return [Voice(v, v, "") for v in sorted(self._states)]

    @property
    def default_voice(self) -> str:
        return self.voices()[0].id if self._states else ""

    def _release_model(self) -> None:
        self._states.clear()

    def validate(self, voice: str, options: SynthesisOptions) -> str:
        if options.reference is not None:
            return ""
        if not self._states:
            raise EngineError("this model has no built-in voices: send ref_audio (a clip of the voice to clone)")
        return self.resolve_voice(voice)

    def warmup(self) -> None:
        if self._states:
            return super().warmup()
        t = np.arange(24000 * 2) / 24000
        hum = (0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)
        for _ in self.synthesize(["Warming up."], "", SynthesisOptions(reference=Clip(hum, 24000))):
            pass

    def synthesize(self, sentences: list[str], voice: str, options: SynthesisOptions) -> Iterator[np.ndarray]:
        assert self._model is not None, "load() first"
        torch = self._torch
        with self._lock:
            state = self._state_for(options.reference) if options.reference is not None else self._states[voice]
            self._model.temp = self._default_temp if options.temperature is None else options.temperature
            if options.seed is not None:
                torch.manual_seed(options.seed)
            for text in sentences:
                parts: list[np.ndarray] = []
                for chunk in self._model.generate_audio_stream(state, text, copy_state=True, stop=options.stop):
                    parts.append(chunk.float().cpu().numpy().reshape(-1))
                if options.stop.is_set():
                    return
                if parts:
                    audio = to_int16(np.concatenate(parts))
                    yield change_tempo(audio, self.sample_rate, options.speed)
