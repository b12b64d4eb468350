"""Word timings for ``"timestamps": "word"`` (pure; ADR 0045).

An engine times the words of one sentence in samples from the start of that sentence's audio:
espeak-ng from its word events (a character position and a sample each), piper from its model's
phoneme durations (the phones it spoke, matched to the words of the text by phonemising each word
alone: espeak-ng runs some words together, "from the" as "fɹʌmðə"). :func:`trim` then moves each
word's end off the silence after it, and the server adds each sentence's offset in the returned
audio.

Words are the input's whitespace-separated tokens as written, punctuation included ("dog." stays
"dog.", which captions need to end a sentence); tokens with nothing but punctuation ("—") are not
words.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

_FRAME_SECONDS = 0.005
_SILENCE_RATIO = 0.06  # a frame quieter than this share of the sentence's loudest frame is silence


@dataclass(frozen=True)
class TextWord:
    word: str
    first: int  # character offset in the sentence of the token's first character
    last: int  # one past the token's last character


@dataclass(frozen=True)
class Timed:
    word: str
    start: int  # samples from the start of the sentence's audio
    end: int


def _is_punctuation(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PS"


def strip_punctuation(token: str) -> str:
    start, end = 0, len(token)
    while start < end and _is_punctuation(token[start]):
        start += 1
    while end > start and _is_punctuation(token[end - 1]):
        end -= 1
    return token[start:end]


def text_words(sentence: str) -> list[TextWord]:
    """The sentence's words with where they stand in it."""
    out: list[TextWord] = []
    i, n = 0, len(sentence)
    while i < n:
        if sentence[i].isspace():
            i += 1
            continue
        j = i
        while j < n and not sentence[j].isspace():
            j += 1
        if strip_punctuation(sentence[i:j]):
            out.append(TextWord(sentence[i:j], i, j))
        i = j
    return out


def _fill(starts: list[int | None], total: int) -> list[int]:
    """Words no event named start where the next named one does (or at the end): zero-length, in order."""
    out: list[int] = [0] * len(starts)
    nxt = total
    for i in range(len(starts) - 1, -1, -1):
        value = starts[i]
        nxt = min(nxt, value) if value is not None else nxt
        out[i] = nxt
    return out


def from_char_events(
    sentence: str, events: Sequence[tuple[int, int]], breaks: Sequence[int], total: int
) -> list[Timed]:
    """espeak-ng's word events (0-based character position, sample) as timed words. A word ends where
    the next begins, at the first clause break (``breaks``, samples) after its start, or at ``total``."""
    words = text_words(sentence)
    starts: list[int | None] = [None] * len(words)
    for position, sample in sorted(events, key=lambda e: e[1]):
        for k, w in enumerate(words):
            if w.first <= position < w.last and starts[k] is None:
                starts[k] = sample
                break
    filled = _fill(starts, total)
    out = []
    for k, w in enumerate(words):
        end = filled[k + 1] if k + 1 < len(words) else total
        end = min([end, *(b for b in breaks if b > filled[k])])
        out.append(Timed(w.word, filled[k], max(end, filled[k])))
    return out


@dataclass(frozen=True)
class Phone:
    """One phoneme of a sentence as the model spoke it: samples from the start of the sentence's audio."""

    phoneme: str
    start: int
    end: int
    opens_word: bool  # the first phoneme after a space (or of the sentence)


_MARKS = frozenset("ˈˌːˑ‿")  # stress and length marks: phonemised alone and in context they differ most


def _comparable(phoneme: str) -> bool:
    return phoneme != " " and phoneme not in _MARKS and not all(_is_punctuation(c) or c in "^$_" for c in phoneme)


def phones(
    ids: Sequence[int], samples: Sequence[int], phoneme_of: Mapping[int, str], pad: int, into_space: float = 1.0
) -> list[Phone]:
    """A sentence's phoneme ids and the samples each lasts (piper's alignments) as phones. The
    blank (pad) between two phonemes is the transition into the next one, so a phone starts where
    the blank before it does, and a word's first phone where the space (or the sentence start)
    before it ends: stress marks before a vowel belong to the word. Spaces, stress marks and
    punctuation are not phones. ``into_space``: how far into a space the next word begins (1: at
    its end)."""
    edges = [0]
    for n in samples:
        edges.append(edges[-1] + int(n))
    out: list[Phone] = []
    opening: int | None = 0  # where the next word begins, while no phone of it has come
    for i, pid in enumerate(ids):
        phoneme = phoneme_of.get(pid, "")
        if phoneme == "^":
            opening = edges[i + 1]
        elif phoneme == " ":
            opening = round(edges[i] + into_space * (edges[i + 1] - edges[i]))
        if pid == pad or not _comparable(phoneme):
            continue
        start = edges[i - 1] if i > 0 and ids[i - 1] == pad else edges[i]
        out.append(Phone(phoneme, start if opening is None else opening, edges[i + 1], opening is not None))
        opening = None
    return out


# Kokoro's audio runs ahead of its durations by about three frames at the start, and a word begins
# halfway through the space before it: the corrections hexgrad's own KPipeline makes for its
# timestamps (``join_timestamps``), applied here the same way
_KOKORO_LEAD_FRAMES = 3


def phones_of_tokens(chars: str, frames: Sequence[int], hop: int, offset: int = 0) -> list[Phone]:
    """Kokoro's phones: one token per phoneme character between a pad token at each end, ``frames``
    per token (the model's durations, ``len(chars) + 2`` of them) of ``hop`` samples each."""
    phoneme_of = {0: "^", len(chars) + 1: "$", **{i + 1: c for i, c in enumerate(chars)}}
    got = phones(list(range(len(frames))), [int(f) * hop for f in frames], phoneme_of, pad=-1, into_space=0.5)
    lead = min(_KOKORO_LEAD_FRAMES, int(frames[0]) if len(frames) else 0) * hop
    return [Phone(p.phoneme, p.start + offset - lead, p.end + offset - lead, p.opens_word) for p in got]


def _owners(word_phonemes: Sequence[Sequence[str]], spoken: Sequence[Phone]) -> list[list[int]]:
    """For each text word, the indices of the spoken phones that match its phonemes (phonemised
    alone), by difflib's matching blocks over the whole sentence."""
    flat: list[str] = []
    owner: list[int] = []
    for k, ps in enumerate(word_phonemes):
        for p in ps:
            if _comparable(p):
                flat.append(p)
                owner.append(k)
    matched: list[list[int]] = [[] for _ in word_phonemes]
    matcher = difflib.SequenceMatcher(a=flat, b=[p.phoneme for p in spoken], autojunk=False)
    for block in matcher.get_matching_blocks():
        for j in range(block.size):
            matched[owner[block.a + j]].append(block.b + j)
    return matched


def _opening(spoken: Sequence[Phone], first: int, floor: int) -> int:
    """Where a word whose first matched phone is ``first`` begins: the word boundary at or before
    it, after the previous word's phones (``floor``); ``first`` itself where words were run
    together ("from the" spoken as one)."""
    for i in range(first, floor - 1, -1):
        if spoken[i].opens_word:
            return i
    return first


def from_phones(
    words: Sequence[TextWord], word_phonemes: Sequence[Sequence[str]], spoken: Sequence[Phone]
) -> list[Timed]:
    """Text words timed by the phones they were spoken as. A word none of whose phonemes were
    heard in the phones gets zero length where the previous word ends."""
    out: list[Timed] = []
    floor = 0  # the first phone after the previous word's
    for w, mine in zip(words, _owners(word_phonemes, spoken), strict=True):
        mine = [i for i in mine if i >= floor]
        if not mine:
            edge = out[-1].end if out else (spoken[0].start if spoken else 0)
            out.append(Timed(w.word, edge, edge))
            continue
        first = _opening(spoken, mine[0], floor)
        out.append(Timed(w.word, spoken[first].start, spoken[mine[-1]].end))
        floor = mine[-1] + 1
    return out


def _loud(samples: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    """Per-frame loudness flags and the frame length."""
    frame = max(1, int(rate * _FRAME_SECONDS))
    n = len(samples) // frame
    if n == 0:
        return np.zeros(0, dtype=bool), frame
    frames = samples[: n * frame].astype(np.float32).reshape(n, frame)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    return rms > _SILENCE_RATIO * float(rms.max() or 1.0), frame


def trim(timed: Sequence[Timed], samples: np.ndarray, rate: int) -> list[Timed]:
    """Each word's end moved back before the silence after it (a pause, a clause break); a word that
    is all silence keeps its times. Starts stay as the engine placed them: they are what players
    highlight by, and moving them onto the first loud frame put them later than listeners hear
    (bench/word_timestamps.py)."""
    loud, frame = _loud(samples, rate)
    out = []
    for t in timed:
        a, b = t.start // frame, min(len(loud), -(-t.end // frame))
        idx = np.flatnonzero(loud[a:b]) if b > a else np.zeros(0, dtype=np.int64)
        if not len(idx):
            out.append(t)
            continue
        end = min(t.end, (a + int(idx[-1]) + 1) * frame)
        out.append(Timed(t.word, t.start, max(end, t.start)))
    return out
