"""Formats: which one to ask the server for, whether its answer is audio, and conversion (ADR 0048).

The server produces the formats its spec lists; for any other the bridge asks for the one it can
read best and re-encodes with the inference image's encoders (PyAV). A stream of WAV or PCM is
converted as it arrives; anything else is read whole, decoded, then encoded.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Collection

import numpy as np

from .. import audio

# what the bridge asks the server for when it cannot produce the wanted format, best first:
# formats that stream as samples, then lossless, then the lossy ones
SOURCE_PREFERENCE = ("wav", "pcm", "flac", "opus", "mp3", "aac")


class NotAudio(ValueError):
    """The server answered something that is not audio of the format asked for."""


def source_format(wanted: str, produced: Collection[str], pcm_rate: int) -> str:
    """The format to ask the server for to answer ``wanted``."""
    if wanted in produced:
        return wanted
    usable = [f for f in SOURCE_PREFERENCE if f in produced and (f != "pcm" or pcm_rate)]
    if not usable:
        raise ValueError(f"no usable source format in {sorted(produced)} (pcm needs sampleRate)")
    return usable[0]


def _mp3(head: bytes) -> bool:
    return head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


def _aac(head: bytes) -> bool:
    return len(head) > 1 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0


_MAGIC = {
    "wav": lambda h: h.startswith(b"RIFF") and h[8:12] == b"WAVE",
    "flac": lambda h: h.startswith(b"fLaC"),
    "opus": lambda h: h.startswith(b"OggS"),
    "mp3": _mp3,
    "aac": _aac,
    "pcm": lambda h: True,
}
_TEXT_TYPES = ("application/json", "text/", "application/xml", "application/problem")


def check_audio(fmt: str, head: bytes, content_type: str) -> None:
    """Raise :class:`NotAudio` unless ``head`` (the answer's first bytes) starts audio of ``fmt``."""
    if content_type.lower().startswith(_TEXT_TYPES):
        raise NotAudio(f"the server answered {content_type.split(';')[0]}, not {fmt} audio")
    if not head:
        raise NotAudio("the server answered no audio (an empty body)")
    if not _MAGIC[fmt](head):
        raise NotAudio(f"the server's answer does not start like {fmt} audio ({head[:8]!r})")


class WavReader:
    """Samples out of a WAV stream as it arrives: the header first, then int16 frames."""

    def __init__(self) -> None:
        self._buffer = b""
        self.rate = 0
        self.channels = 1
        self._in_data = False

    def feed(self, data: bytes) -> np.ndarray | None:
        """Mono int16 samples ready so far; None while the header is incomplete."""
        self._buffer += data
        if not self._in_data and not self._header():
            return None
        frame = 2 * self.channels
        usable = len(self._buffer) - len(self._buffer) % frame
        chunk, self._buffer = self._buffer[:usable], self._buffer[usable:]
        samples = np.frombuffer(chunk, dtype="<i2")
        if self.channels > 1:
            samples = samples.reshape(-1, self.channels).mean(axis=1).astype(np.int16)
        return samples

    def _header(self) -> bool:
        buf = self._buffer
        if len(buf) >= 12 and not (buf.startswith(b"RIFF") and buf[8:12] == b"WAVE"):
            raise NotAudio("not a WAV stream")
        pos = 12
        while len(buf) >= pos + 8:
            kind, size = buf[pos : pos + 4], struct.unpack("<I", buf[pos + 4 : pos + 8])[0]
            if kind == b"data":
                if not self.rate:
                    raise NotAudio("a WAV stream without a fmt chunk before its data")
                self._buffer, self._in_data = buf[pos + 8 :], True
                return True
            if len(buf) < pos + 8 + size:
                return False
            if kind == b"fmt ":
                self._fmt(buf[pos + 8 : pos + 8 + size])
            pos += 8 + size + size % 2
        return False

    def _fmt(self, body: bytes) -> None:
        tag, channels, rate, _byte_rate, _align, bits = struct.unpack("<HHIIHH", body[:16])
        if tag not in (1, 0xFFFE) or bits != 16:
            raise NotAudio(f"WAV with format tag {tag} and {bits}-bit samples (the bridge reads 16-bit PCM)")
        self.channels, self.rate = max(channels, 1), rate


class Converter:
    """``wanted`` audio out of a ``source`` stream: wav or pcm converted as it comes, others read whole.
    ``rate`` is the output's sample rate once the first audio is out (the X-Sample-Rate header)."""

    def __init__(self, source: str, wanted: str, pcm_rate: int) -> None:
        self.source, self.wanted, self.pcm_rate = source, wanted, pcm_rate
        self.rate: int | None = None

    async def run(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        if self.source not in ("wav", "pcm"):
            data = b"".join([c async for c in chunks])
            try:
                clip = await asyncio.to_thread(audio.decode_clip, data)
            except audio.AudioInputError as exc:
                raise NotAudio(f"the server's {self.source} answer does not decode: {exc}") from exc
            self.rate = audio.output_rate(self.wanted, clip.sample_rate)
            yield await asyncio.to_thread(audio.encode, audio.to_int16(clip.samples), clip.sample_rate, self.wanted)
            return
        encoder: audio.StreamEncoder | None = None
        try:
            async for samples in self._samples(chunks):
                if encoder is None:
                    encoder = audio.StreamEncoder(self.wanted, samples[1])
                    self.rate = encoder.rate
                # encoding off the event loop: the bridge keeps relaying other requests meanwhile
                if out := await asyncio.to_thread(encoder.feed, samples[0]):
                    yield out
            if encoder is None:
                raise NotAudio(f"the server's {self.source} answer ended before its audio began")
            yield await asyncio.to_thread(encoder.finish)
        finally:
            if encoder is not None:
                encoder.close()

    async def _samples(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[np.ndarray, int]]:
        """(int16 mono samples, their rate) as the wav or pcm stream arrives."""
        reader = WavReader() if self.source == "wav" else None
        carry = b""
        async for chunk in chunks:
            if reader is not None:
                samples = reader.feed(chunk)
                if samples is not None:
                    yield samples, reader.rate
                continue
            data = carry + chunk
            cut = len(data) - len(data) % 2
            carry = data[cut:]
            yield np.frombuffer(data[:cut], dtype="<i2"), self.pcm_rate
