"""Splitting text into sentences: the inference server streams one at a time, TtsJob plans cut chunks
from them (tts_crds.plan). Pure functions, shared so both cut text the same way."""

from __future__ import annotations

import re

# A sentence ends at . ! ? … (and their CJK forms) followed by space or the end, possibly after
# closing quotes or brackets; CJK full stops need no space after them.
_SENTENCE_END = re.compile(r"""(?<=[.!?…])["'”’)\]]*\s+|(?<=[。！？])["'”’）」』]*\s*""")
# control characters and lone surrogates (JSON can carry "\u0000" or "\ud800"): nothing to speak,
# and a NUL or an unencodable surrogate breaks the C libraries under the engines
_UNSPEAKABLE = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_CLAUSE_END = re.compile(r"(?<=[,;:，；：、—])\s*")
# where the first sentence may be cut to start speaking early: Latin clause marks only before a
# space (not "1,000" or "10:30"), CJK ones anywhere
_FIRST_CUT = re.compile(r"(?<=[,;:—])\s+|(?<=[，；：、])\s*")
# abbreviations that end in a full stop without ending the sentence
_ABBREVIATIONS = frozenset(
    {
        *("mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "a.m", "p.m"),
        *("no", "fig", "inc", "ltd", "co", "corp", "mt", "approx", "dept", "est", "vol"),
    }
)


def _ends_with_abbreviation(piece: str) -> bool:
    last = piece.rstrip().rsplit(None, 1)[-1].rstrip(".").lower() if piece.strip() else ""
    return last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha())


def cut_at_spaces(text: str, limit: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``limit`` characters, at spaces where there are any."""
    out: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        cut = rest.rfind(" ", 0, limit)
        cut = cut if cut > 0 else limit
        out.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest:
        out.append(rest)
    return out


def _split_long(sentence: str, max_chars: int) -> list[str]:
    """Split an over-long sentence at clause punctuation, then at spaces, never mid-word if avoidable."""
    if len(sentence) <= max_chars:
        return [sentence]
    out: list[str] = []
    current = ""
    for clause in (c for c in _CLAUSE_END.split(sentence) if c):
        if current and len(current) + 1 + len(clause) > max_chars:
            out.append(current)
            current = ""
        current = f"{current} {clause}".strip() if current else clause
        if len(current) > max_chars:
            *done, current = cut_at_spaces(current, max_chars)
            out.extend(done)
    if current:
        out.append(current)
    return out


def speakable(text: str) -> str:
    """``text`` without the characters no engine can speak (control characters, lone surrogates)."""
    return _UNSPEAKABLE.sub("", text)


def _short_first(sentence: str, first_chars: int, min_chars: int) -> list[str]:
    """A first sentence over ``first_chars`` cut at its last clause mark within them, so the first
    audio leaves after a clause; unchanged if no cut leaves both parts at least ``min_chars`` long."""
    if len(sentence) <= first_chars:
        return [sentence]
    cuts = [m.start() for m in _FIRST_CUT.finditer(sentence) if min_chars <= m.start() <= first_chars]
    cuts = [c for c in cuts if len(sentence[c:].strip()) >= min_chars]
    if not cuts:
        return [sentence]
    return [sentence[: cuts[-1]].strip(), sentence[cuts[-1] :].strip()]


def split_sentences(text: str, max_chars: int = 400, min_chars: int = 12, first_chars: int = 80) -> list[str]:
    """Split ``text`` into sentences of at most ``max_chars`` characters.

    Unspeakable characters are dropped and whitespace is normalised; pieces shorter than
    ``min_chars`` ("Hi.", "No!") join the next one so an engine is not called for a syllable;
    abbreviations such as "Dr." do not end a sentence. A first sentence longer than
    ``first_chars`` is cut at a clause mark within them, so the first audio comes sooner.
    """
    normalised = " ".join(speakable(text).split())
    if not normalised:
        return []
    pieces = [p.strip() for p in _SENTENCE_END.split(normalised) if p and p.strip()]
    # re-join pieces that ended in an abbreviation or are too short to stand alone
    merged: list[str] = []
    for piece in pieces:
        if merged and (_ends_with_abbreviation(merged[-1]) or len(merged[-1]) < min_chars):
            merged[-1] = f"{merged[-1]} {piece}"
        else:
            merged.append(piece)
    out: list[str] = []
    for sentence in merged:
        out.extend(_split_long(sentence, max_chars))
    return _short_first(out[0], first_chars, min_chars) + out[1:]
