"""Captions from word timings: cue grouping and the WebVTT and SubRip renderings (pure; ADR 0045).

Words (``events.WordTiming``, as ``speech.audio.done`` carries them) are gathered into cues of at
most ``max_lines`` lines of ``max_line_chars`` characters that last at most ``max_cue_seconds``; a
cue also ends after a word that ends a sentence and before a pause of ``pause_seconds`` or more, so
captions follow what is said. Times are seconds of the audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .events import WordTiming

CaptionFormat = Literal["vtt", "srt"]
MEDIA_TYPES: dict[str, str] = {"vtt": "text/vtt; charset=utf-8", "srt": "application/x-subrip; charset=utf-8"}
_SENTENCE_END = (".", "!", "?", "…", "。", "！", "？")
_MIN_CUE_SECONDS = 0.001
# longest audio a caption may time: a day (a longer time is no synthesis' and overflows the clock)
MAX_SECONDS = 86_400.0


class CaptionsRequest(BaseModel):
    """``POST /v1/audio/captions``: the words of a synthesis (``speech.audio.done``'s ``words``) as captions."""

    model_config = ConfigDict(extra="forbid")

    words: list[WordTiming] = Field(
        min_length=1, max_length=50_000, description="The words, as speech.audio.done carries them."
    )
    format: CaptionFormat = Field(default="vtt", description="vtt (WebVTT) or srt (SubRip).")
    max_line_chars: int = Field(default=42, ge=10, le=200, description="Longest caption line, in characters.")
    max_lines: int = Field(default=2, ge=1, le=4, description="Lines per cue.")
    max_cue_seconds: float = Field(default=6.0, ge=0.5, le=60.0, description="Longest cue, in seconds.")
    pause_seconds: float = Field(default=0.6, ge=0.0, le=10.0, description="A pause this long starts a new cue.")

    @field_validator("words")
    @classmethod
    def _renderable(cls, words: list[WordTiming]) -> list[WordTiming]:
        """Times on a caption clock and words that UTF-8 can write (JSON can carry a lone surrogate)."""
        for i, w in enumerate(words):
            if not (w.start <= MAX_SECONDS and w.end <= MAX_SECONDS):
                raise ValueError(f"words[{i}]: start and end must be at most {MAX_SECONDS:g} seconds")
            try:
                w.word.encode()
            except UnicodeEncodeError:
                raise ValueError(f"words[{i}].word is not valid Unicode (it holds a lone surrogate)") from None
        return words


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    lines: tuple[str, ...]


def _lines(words: list[str], max_chars: int) -> list[str]:
    """``words`` wrapped into lines of at most ``max_chars`` (a longer word gets a line of its own)."""
    lines: list[str] = []
    for word in words:
        if lines and len(lines[-1]) + 1 + len(word) <= max_chars:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def _fits(words: list[WordTiming], nxt: WordTiming, req: CaptionsRequest) -> bool:
    """Whether ``nxt`` may join the cue holding ``words``."""
    last = words[-1]
    if last.word.endswith(_SENTENCE_END) or nxt.start - last.end >= req.pause_seconds:
        return False
    if nxt.end - words[0].start > req.max_cue_seconds:
        return False
    return len(_lines([w.word for w in [*words, nxt]], req.max_line_chars)) <= req.max_lines


def _cue(words: list[WordTiming], max_chars: int) -> Cue:
    start = words[0].start
    end = max(max(w.end for w in words), start + _MIN_CUE_SECONDS)
    return Cue(start, end, tuple(_lines([w.word for w in words], max_chars)))


def cues(req: CaptionsRequest) -> list[Cue]:
    """The words, in time order, grouped into cues."""
    ordered = sorted((w for w in req.words if w.word.strip()), key=lambda w: w.start)
    groups: list[list[WordTiming]] = []
    for word in ordered:
        if groups and _fits(groups[-1], word, req):
            groups[-1].append(word)
        else:
            groups.append([word])
    return [_cue(g, req.max_line_chars) for g in groups]


def timestamp(seconds: float, separator: str) -> str:
    """``HH:MM:SS<sep>mmm``, rounded to the millisecond: SRT separates milliseconds with ``,``, WebVTT with ``.``."""
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def to_srt(cue_list: list[Cue]) -> str:
    """SubRip: numbered cues from 1, ``00:00:01,250 --> 00:00:02,000``, a blank line after each."""
    return "".join(
        f"{i}\n{timestamp(c.start, ',')} --> {timestamp(c.end, ',')}\n" + "\n".join(c.lines) + "\n\n"
        for i, c in enumerate(cue_list, 1)
    )


def to_vtt(cue_list: list[Cue]) -> str:
    """WebVTT: the ``WEBVTT`` header, then ``00:00:01.250 --> 00:00:02.000`` cues."""
    body = "".join(
        f"{timestamp(c.start, '.')} --> {timestamp(c.end, '.')}\n" + "\n".join(c.lines) + "\n\n" for c in cue_list
    )
    return "WEBVTT\n\n" + body


def render(req: CaptionsRequest) -> str:
    """The captions file ``req.format`` names."""
    cue_list = cues(req)
    return to_vtt(cue_list) if req.format == "vtt" else to_srt(cue_list)
