"""A transcript and the five shapes OpenAI's ``/v1/audio/transcriptions`` answers in (pure).

``json`` is ``{"text"}``; ``text`` the bare text; ``verbose_json`` adds language, duration, segments
and, when asked, words; ``srt`` and ``vtt`` are subtitles, one cue per segment. Times are seconds
from the start of the clip.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

from tts_crds import captions

from .languages import language_name


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float


@dataclass(frozen=True)
class Segment:
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: tuple[int, ...] = ()
    temperature: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Transcript:
    language: str  # the code Whisper heard or was told ("en")
    duration: float  # seconds of audio
    segments: tuple[Segment, ...]

    @property
    def text(self) -> str:
        # segment texts carry their own leading space (" Hello."), as Whisper's tokens do
        return "".join(s.text for s in self.segments).strip()

    @property
    def words(self) -> tuple[Word, ...]:
        return tuple(w for s in self.segments for w in s.words)


def _cues(transcript: Transcript) -> list[captions.Cue]:
    """One cue per segment that says something; a cue lasts at least a millisecond."""
    out = []
    for s in transcript.segments:
        text = s.text.strip()
        if text:
            out.append(captions.Cue(s.start, max(s.end, s.start + 0.001), (text,)))
    return out


def to_srt(transcript: Transcript) -> str:
    """SubRip: numbered cues from 1, ``00:00:01,250 --> 00:00:02,000``, a blank line after each."""
    return captions.to_srt(_cues(transcript))


def to_vtt(transcript: Transcript) -> str:
    """WebVTT: the ``WEBVTT`` header, then ``00:00:01.250 --> 00:00:02.000`` cues."""
    return captions.to_vtt(_cues(transcript))


def _segment_json(s: Segment) -> dict:
    return {
        "id": s.id,
        "seek": s.seek,
        "start": round(s.start, 3),
        "end": round(s.end, 3),
        "text": s.text,
        "tokens": list(s.tokens),
        "temperature": s.temperature,
        "avg_logprob": s.avg_logprob,
        "compression_ratio": s.compression_ratio,
        "no_speech_prob": s.no_speech_prob,
    }


def verbose_json(transcript: Transcript, granularities: Collection[str]) -> dict:
    """OpenAI's verbose shape: segments unless only words were asked for, words only when asked.
    ``language`` is the language's English name in lower case ("english"), as OpenAI writes it."""
    body: dict = {
        "task": "transcribe",
        "language": language_name(transcript.language),
        "duration": round(transcript.duration, 3),
        "text": transcript.text,
    }
    if "segment" in granularities or not granularities:
        body["segments"] = [_segment_json(s) for s in transcript.segments]
    if "word" in granularities:
        body["words"] = [
            {"word": w.word.strip(), "start": round(w.start, 3), "end": round(w.end, 3)} for w in transcript.words
        ]
    body["usage"] = {"type": "duration", "seconds": math.ceil(transcript.duration)}
    return body


def render(transcript: Transcript, fmt: str, granularities: Collection[str] = ()) -> str | dict:
    """The answer for ``response_format=fmt``: a dict for the JSON formats, text for the others."""
    if fmt == "json":
        return {"text": transcript.text}
    if fmt == "verbose_json":
        return verbose_json(transcript, granularities)
    if fmt == "text":
        return transcript.text + "\n"
    if fmt == "srt":
        return to_srt(transcript)
    if fmt == "vtt":
        return to_vtt(transcript)
    raise ValueError(f"unknown response_format {fmt!r}")
