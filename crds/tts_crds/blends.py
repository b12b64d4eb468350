"""Voice blends: a ``voice`` that names a weighted mix of a model's voices, such as
``af_bella(0.7)+af_sky(0.3)`` (pure; shared by the router, which checks a blend before it wakes a
model, and the inference server, which mixes the style vectors).

The grammar (ADR 0042)::

    blend  := part ("+" part)*          at most MAX_PARTS parts, each voice once
    part   := voice ["(" weight ")"]    a weight left out counts as 1
    voice  := [A-Za-z0-9_.-]+           a built-in voice of the model (or a voice alias, at the router)
    weight := a decimal number, > 0 and <= MAX_WEIGHT

Spaces around the tokens are allowed. Weights are normalised to sum to 1, so
``af_bella(7)+af_sky(3)`` and ``af_bella(0.7)+af_sky(0.3)`` are the same blend. A plain voice name
(no ``+`` and no parenthesis) is not a blend.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .engines import Engine

MAX_PARTS = 4
MAX_WEIGHT = 100.0
# engines whose voices are style vectors that can be mixed (Kokoro's 510 x 1 x 256 packs)
BLENDABLE: frozenset[Engine] = frozenset({Engine.KOKORO})

SYNTAX = "voice(weight)+voice(weight), e.g. af_bella(0.7)+af_sky(0.3)"
_PART = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*(?:\(\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*\))?\s*$")


class BlendError(ValueError):
    """A blend that does not parse or names a voice the model lacks; ``part`` is the offending part."""

    def __init__(self, message: str, part: str | None = None) -> None:
        super().__init__(message)
        self.part = part


@dataclass(frozen=True)
class Blend:
    """Voices and their normalised weights (summing to 1), in the order they were written."""

    parts: tuple[tuple[str, float], ...]

    @property
    def voices(self) -> tuple[str, ...]:
        return tuple(v for v, _ in self.parts)

    @property
    def first(self) -> str:
        """The voice that sets the blend's language (the first one written)."""
        return self.parts[0][0]

    def canonical(self) -> str:
        """The blend as one string with normalised weights: what the router sends the pod."""
        return "+".join(f"{v}({w:.4g})" for v, w in self.parts)

    def renamed(self, rename: Callable[[str], str]) -> Blend:
        """The same weights with each voice mapped (a voice alias to the voice it stands for)."""
        return Blend(tuple((rename(v), w) for v, w in self.parts))


def is_blend(voice: str) -> bool:
    return "+" in voice or "(" in voice or ")" in voice


def _part(text: str) -> tuple[str, float]:
    match = _PART.match(text)
    if not match:
        raise BlendError(f"blend part {text.strip()!r} is not voice or voice(weight); write {SYNTAX}", text.strip())
    voice, raw = match.group(1), match.group(2)
    weight = float(raw) if raw is not None else 1.0
    if not 0 < weight <= MAX_WEIGHT:
        raise BlendError(f"blend part {text.strip()!r}: the weight must be > 0 and <= {MAX_WEIGHT:g}", voice)
    return voice, weight


def parse(voice: str) -> Blend:
    """Parse a blend; :class:`BlendError` says what is wrong and names the part."""
    texts = voice.split("+")
    if len(texts) > MAX_PARTS:
        raise BlendError(f"a blend mixes at most {MAX_PARTS} voices; {voice!r} has {len(texts)}")
    parts = [_part(t) for t in texts]
    seen: set[str] = set()
    for name, _ in parts:
        if name in seen:
            raise BlendError(f"voice {name!r} appears twice in the blend {voice!r}", name)
        seen.add(name)
    total = sum(w for _, w in parts)
    return Blend(tuple((name, w / total) for name, w in parts))


def check_voices(blend: Blend, known: set[str] | frozenset[str]) -> None:
    """Every part must be one of ``known``: :class:`BlendError` names the first that is not."""
    for name in blend.voices:
        if name not in known:
            raise BlendError(f"blend part {name!r} is not a voice of this model", name)


def can_blend(engine: str | Engine) -> bool:
    try:
        return Engine(engine) in BLENDABLE
    except ValueError:
        return False
