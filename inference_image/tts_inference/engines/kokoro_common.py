"""What both Kokoro paths share, as pure functions: the voice-language table, the layout a model
directory holds, and the phonemiser each sentence goes through.

Two layouts of the same Kokoro-82M model:

- ``torch``: ``config.json``, one ``*.pth`` checkpoint and ``voices/<id>.pt`` packs (the
  hexgrad/Kokoro-82M repository), run by the ``kokoro`` package on torch (the CUDA image);
- ``onnx``: one ``*.onnx`` export and voice packs in kokoro-onnx's format, an npz of
  510 x 1 x 256 arrays named by voice id (``voices-v1.0.bin``, ``voices_ja.npz``), run by
  onnxruntime (the CPU image, which has no torch).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Literal

from tts_crds import blends

from .base import ModelLoadError, Voice

SAMPLE_RATE = 24000


@dataclass(frozen=True)
class VoiceLanguage:
    tag: str  # BCP-47, shown in /v1/audio/voices
    espeak: str  # espeak-ng's language for text in it


# a voice id's first letter names its language (af_heart, jf_alpha, zm_yunxi)
LANGUAGES: dict[str, VoiceLanguage] = {
    "a": VoiceLanguage("en-US", "en-us"),
    "b": VoiceLanguage("en-GB", "en-gb"),
    "e": VoiceLanguage("es", "es"),
    "f": VoiceLanguage("fr-FR", "fr-fr"),
    "h": VoiceLanguage("hi", "hi"),
    "i": VoiceLanguage("it", "it"),
    "j": VoiceLanguage("ja", "ja"),
    "p": VoiceLanguage("pt-BR", "pt-br"),
    "z": VoiceLanguage("zh", "cmn"),
}

#: the G2P key of Japanese text through the Japanese phonemiser (anything else is an espeak language)
JAPANESE = "ja-g2p"

# kana, kanji, CJK punctuation and full-width forms: text a Japanese or Chinese voice reads as such
_CJK = re.compile(r"[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff01-\uff60]")


def language_of(voice: str) -> VoiceLanguage | None:
    """The language of a voice id, or None for a prefix no phonemiser here speaks."""
    return LANGUAGES.get(voice[:1])


def base_voice(voice: str) -> str:
    """The voice whose language a (resolved) voice speaks: itself, or a blend's first part."""
    return blends.parse(voice).first if blends.is_blend(voice) else voice


def style_pack(packs: Mapping[str, Any], voice: str) -> Any:
    """The style vectors of a resolved voice: its pack, or a blend's packs mixed by their weights
    (numpy arrays or torch tensors alike: the packs share one shape, 510 x 1 x 256)."""
    if not blends.is_blend(voice):
        return packs[voice]
    parts = blends.parse(voice).parts
    mixed = packs[parts[0][0]] * parts[0][1]
    for name, weight in parts[1:]:
        mixed = mixed + packs[name] * weight
    return mixed


def list_voices(ids: Iterable[str]) -> list[Voice]:
    """The voices of a pack's ids, sorted, with their languages; ids of unknown languages are left out."""
    return [Voice(v, v, lang.tag) for v in sorted(ids) if (lang := language_of(v)) is not None]


def g2p_for(voice: str, text: str, japanese: bool) -> str:
    """The phonemiser for one sentence: ``JAPANESE`` for Japanese text with a j voice when the
    Japanese G2P is installed, otherwise an espeak-ng language. Japanese and Chinese voices read
    text without CJK characters as English (Kokoro speaks English words in those voices too)."""
    language = LANGUAGES[voice[:1]]
    if voice[:1] in "jz" and not _CJK.search(text):
        return "en-us"
    if voice[:1] == "j" and japanese:
        return JAPANESE
    return language.espeak


@dataclass(frozen=True)
class Layout:
    kind: Literal["torch", "onnx"]
    model: str  # the checkpoint or the export, relative to the model directory
    voices: tuple[str, ...]  # the voice pack files, relative to the model directory
    config: str = ""  # config.json (torch)


def _is_voice_pack(name: str) -> bool:
    """kokoro-onnx's packs are npz files, named ``*.npz`` or (its release files) ``voices*.bin``."""
    path = PurePath(name)
    return path.suffix == ".npz" or (path.suffix == ".bin" and path.stem.startswith("voices"))


def choose_layout(names: Collection[str], torch: bool) -> Layout:
    """The layout of a model directory from its file names (relative, ``voices/x.pt`` for packs);
    with both present, torch where it is installed. Raises ModelLoadError when neither is there."""
    top = sorted(n for n in names if len(PurePath(n).parts) == 1)
    checkpoints = [n for n in top if n.endswith(".pth")]
    exports = [n for n in top if n.endswith(".onnx")]
    packs = tuple(n for n in top if _is_voice_pack(n))
    has_torch = "config.json" in top and bool(checkpoints)
    has_onnx = bool(exports) and bool(packs)
    if has_torch and (torch or not has_onnx):
        pt = tuple(sorted(n for n in names if PurePath(n).parent == PurePath("voices") and n.endswith(".pt")))
        return Layout("torch", checkpoints[0], pt, config="config.json")
    if has_onnx:
        return Layout("onnx", exports[0], packs)
    found = ", ".join(top[:12]) + (" …" if len(top) > 12 else "") if top else "nothing"
    raise ModelLoadError(
        "not a Kokoro model directory: it needs config.json, a *.pth checkpoint and voices/*.pt (torch), "
        f"or a *.onnx export and a voices .npz such as voices-v1.0.bin (onnxruntime); it holds {found}"
    )
