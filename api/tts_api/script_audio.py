"""The router's own encoder, for a script spoken through the speech API (ADR 0052): 16-bit mono pcm in,
one file of the asked format out, bit by bit as the lines arrive.

libsndfile (soundfile, already in the router image for voice clips and the TtsJob renderer) does the
codecs; the router image has no FFmpeg. What streams and what is sent whole follows the inference
server's rule (:func:`tts_crds.speech.sent_whole`, ADR 0046): pcm, mp3 and opus stream; wav streams
with the 0xFFFFFFFF sizes over SSE and goes whole (with its true sizes) as a download; flac goes whole.

- **Opus** in Ogg: libsndfile writes pages as it goes and never seeks back.
- **MP3**: LAME writes a blank first frame that it fills with its "Info" tag (length, encoder delay)
  when the file is closed, by seeking back. A stream cannot seek back, so the blank frame is dropped
  (:func:`drop_blank_frame`) and the stream is constant-bitrate, whose length readers (libsndfile's
  mpg123 among them) work out from its size; a variable-bitrate stream without the tag reads short.
  That is what the inference server's FFmpeg sends over a stream too.

Not thread-safe; the router calls ``feed`` and ``finish`` in a worker thread, never on the event loop.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import soundfile as sf
import soxr
from tts_crds import wav
from tts_crds.speech import SOUNDFILE_FORMATS

# wav is framed here (streamed, or sent whole with its true sizes); the rest soundfile encodes
_SOUNDFILE = {f: v for f, v in SOUNDFILE_FORMATS.items() if f != "wav"}
_MP3_SYNC = 0xFF


def drop_blank_frame(data: bytes) -> bytes | None:
    """``data`` (the start of LAME's MP3 stream) without its first frame when that frame is LAME's blank
    placeholder (a 4-byte header, then zeros up to the next frame's sync byte); None while the next frame
    has not begun yet (wait for more bytes)."""
    if len(data) < 4:
        return None
    end = data.find(bytes([_MP3_SYNC]), 4)
    if end < 0:
        return None if not data[4:].strip(b"\0") else data
    return data[end:] if not data[4:end].strip(b"\0") else data


class _AppendOnly(io.RawIOBase):
    """A write target for libsndfile that never sends a byte twice: writes at the end are kept, writes
    after a seek back (a header patched at close) are dropped, since what they patch has left already."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._end = 0
        self._pos = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def write(self, data: bytes | memoryview) -> int:  # type: ignore[override]
        if self._pos == self._end:
            self._parts.append(bytes(data))
            self._end += len(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._end}[whence]
        self._pos = base + offset
        return self._pos

    def read(self, size: int = -1) -> bytes:
        return b""

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


class ScriptEncoder:
    """pcm bytes (s16le mono at ``rate``, split anywhere) in; the bytes to send out (possibly none)."""

    def __init__(self, fmt: str, rate: int, whole: bool) -> None:
        if fmt not in (*_SOUNDFILE, "wav", "pcm"):
            raise ValueError(f"no script encoder for {fmt!r}")
        self.fmt = fmt
        self.rate = rate
        self.whole = whole
        self.samples = 0
        self._odd = b""  # a byte of a sample split between two chunks
        self._started = False
        self._held = b""  # mp3: the stream's start, until its blank frame is dropped
        self._pcm: list[bytes] = []  # wav sent whole
        self._file: sf.SoundFile | None = None
        self._sink: _AppendOnly | io.BytesIO | None = None
        if fmt in _SOUNDFILE:
            container, subtype = _SOUNDFILE[fmt]
            self._sink = io.BytesIO() if whole else _AppendOnly()
            extra = {"bitrate_mode": "CONSTANT", "compression_level": 0.5} if fmt == "mp3" else {}
            self._file = sf.SoundFile(
                self._sink, "w", samplerate=rate, channels=1, format=container, subtype=subtype, **extra
            )

    def _samples(self, pcm: bytes) -> bytes:
        """Whole samples of ``pcm`` (with a byte held over from the chunk before)."""
        data = self._odd + pcm
        cut = len(data) - len(data) % 2
        self._odd = data[cut:]
        self.samples += cut // 2
        return data[:cut]

    def _taken(self) -> bytes:
        if not isinstance(self._sink, _AppendOnly):
            return b""  # a file sent whole leaves at finish
        data = self._sink.take()
        if self.fmt != "mp3" or self._started:
            return data
        self._held += data
        rest = drop_blank_frame(self._held)
        if rest is None:
            return b""
        self._started, self._held = True, b""
        return rest

    def feed(self, pcm: bytes) -> bytes:
        data = self._samples(pcm)
        if self.fmt == "pcm":
            return data
        if self.fmt == "wav":
            if self.whole:
                self._pcm.append(data)
                return b""
            head = b"" if self._started else wav.header(self.rate)
            self._started = True
            return head + data
        assert self._file is not None
        if data:
            self._file.write(np.frombuffer(data, dtype="<i2"))
        return self._taken()

    def finish(self) -> bytes:
        if self.fmt == "pcm":
            return b""
        if self.fmt == "wav":
            if self.whole:
                data = b"".join(self._pcm)
                return wav.header(self.rate, len(data)) + data
            return b"" if self._started else wav.header(self.rate)
        assert self._file is not None and self._sink is not None
        self._file.close()
        self._file = None
        if isinstance(self._sink, io.BytesIO):
            return self._sink.getvalue()
        out = self._taken()
        return out + (self._held if not self._started else b"")

    def close(self) -> None:
        """Let go of the encoder without finishing (the client left, a line failed)."""
        if self._file is not None:
            with contextlib.suppress(RuntimeError, sf.LibsndfileError):
                self._file.close()
            self._file = None

    @property
    def seconds(self) -> float:
        return self.samples / self.rate


class Resampler:
    """pcm bytes of one segment from ``from_rate`` to ``to_rate`` (libsoxr, streaming). Only a segment
    whose model could not give the script's rate itself needs one: the first, when its model's own rate
    is one the codec does not take."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self._stream = soxr.ResampleStream(from_rate, to_rate, 1, dtype="int16")
        self._odd = b""

    def feed(self, pcm: bytes) -> bytes:
        data = self._odd + pcm
        cut = len(data) - len(data) % 2
        self._odd = data[cut:]
        out = self._stream.resample_chunk(np.frombuffer(data[:cut], dtype="<i2"))
        return np.asarray(out, dtype="<i2").tobytes()

    def finish(self) -> bytes:
        out = self._stream.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
        return np.asarray(out, dtype="<i2").tobytes()
