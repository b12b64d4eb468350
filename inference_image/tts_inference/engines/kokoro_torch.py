"""Kokoro-82M's torch layout through the ``kokoro`` package (the CUDA image): ``config.json``, one
``*.pth`` checkpoint, ``voices/<id>.pt`` style packs (the hexgrad/Kokoro-82M repository). A voice's
first letter names its language (a = American English, b = British English, e, f, h, i, p; j and z
need misaki's ja/zh extras, which this image lacks).
Phonemes come from misaki: its English G2P when spaCy's ``en_core_web_sm`` is installed, otherwise
misaki's espeak-ng G2P (which never downloads anything at run time).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tts_crds.text import cut_at_spaces

from ..audio import to_int16
from .base import ModelLoadError, SynthesisOptions, Voice
from .kokoro_common import LANGUAGES, SAMPLE_RATE, Layout, base_voice, style_pack
from .torch_support import TorchEngine

log = logging.getLogger(__name__)

#: the voice languages misaki phonemises here (ja and zh need its extras)
TORCH_PREFIXES = "abefhip"


class KokoroTorch(TorchEngine):
    name = "kokoro"
    blends = True
    packages = ("kokoro", "misaki")

    def __init__(self, model_uri: str, model_dir: str, device: str, root: Path, layout: Layout) -> None:
        super().__init__(model_uri, model_dir, device)
        self._root = root
        self._layout = layout
        self._packs: dict[str, Any] = {}
        self._g2p: dict[str, Any] = {}
        self._g2p_kind = ""

    def _files(self) -> tuple[Path, Path, list[Path]]:
        root, layout = self._root, self._layout
        return root / layout.config, root / layout.model, [root / v for v in layout.voices]

    def _phonemiser(self, prefix: str) -> Any:
        from misaki import espeak

        language = LANGUAGES[prefix].espeak
        if prefix in "ab":
            import spacy.util

            if spacy.util.is_package("en_core_web_sm"):
                from misaki import en

                self._g2p_kind = "misaki"
                return en.G2P(trf=False, british=prefix == "b", fallback=espeak.EspeakFallback(british=prefix == "b"))
            self._g2p_kind = "espeak"
            log.warning("spaCy's en_core_web_sm is not installed: English phonemes come from espeak-ng")
        return espeak.EspeakG2P(language=language)

    def load(self) -> None:
        torch = self._start_torch()
        from kokoro.model import KModel

        config, checkpoint, voice_files = self._files()
        try:
            model = KModel(repo_id="hexgrad/Kokoro-82M", config=str(config), model=str(checkpoint))
        except (OSError, RuntimeError, KeyError, ValueError, AssertionError) as exc:
            raise ModelLoadError(f"cannot load Kokoro checkpoint {checkpoint.name}: {exc}") from exc
        self._model = model.to(self._device).eval()
        for path in voice_files:
            prefix = path.stem[:1]
            if prefix not in TORCH_PREFIXES:
                log.warning("skipping voice %s: language %r needs misaki extras this image lacks", path.stem, prefix)
                continue
            try:
                pack = torch.load(path, map_location=self._device, weights_only=True)
            except (OSError, RuntimeError) as exc:
                raise ModelLoadError(f"cannot load voice {path.name}: {exc}") from exc
            self._packs[path.stem] = pack
        if not self._packs:
            raise ModelLoadError(f"no usable voices in {checkpoint.parent / 'voices'}")
        for prefix in {v[:1] for v in self._packs}:
            self._g2p[prefix] = self._phonemiser(prefix)

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    def voices(self) -> list[Voice]:
        return [Voice(v, v, LANGUAGES[v[:1]].tag) for v in sorted(self._packs)]

    @property
    def default_voice(self) -> str:
        return "af_heart" if "af_heart" in self._packs else self.voices()[0].id

    def details(self) -> dict[str, str]:
        return {"layout": "torch", "g2p": self._g2p_kind or "espeak"}

    def _release_model(self) -> None:
        self._packs.clear()

    def synthesize(self, sentences: list[str], voice: str, options: SynthesisOptions) -> Iterator[np.ndarray]:
        assert self._model is not None, "load() first"
        voice = self.resolve_voice(voice)
        g2p = self._g2p[base_voice(voice)[:1]]
        pack = style_pack(self._packs, voice)
        limit = self._model.context_length - 2
        for text in sentences:
            phonemes, _ = g2p(text)
            for piece in cut_at_spaces(phonemes or "", limit):
                if options.stop.is_set():
                    return
                style = pack[min(len(piece), len(pack)) - 1]
                with self._torch.inference_mode():  # KModel's forward keeps no state: threads may share it
                    audio = self._model(piece, style, speed=options.speed)
                yield to_int16(audio.float().cpu().numpy().reshape(-1))
