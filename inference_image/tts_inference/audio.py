"""Audio encoding, decoding and tempo through maintained libraries (FFmpeg via PyAV, libsoxr, libsndfile).

Pure functions and small stateful encoders over mono int16 arrays; no network or file I/O.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
import soxr
from tts_crds import clips
from tts_crds.speech import sent_whole

# PyAV (FFmpeg) is imported where it is used, not here: it is 0.1–0.2 s of the server's start,
# which a model waking from zero would wait for, and raw pcm never needs it
if TYPE_CHECKING:
    import av

# response_format -> (FFmpeg muxer, FFmpeg encoder)
_CODECS: dict[str, tuple[str, str]] = {
    "mp3": ("mp3", "libmp3lame"),
    "opus": ("ogg", "libopus"),
    "aac": ("adts", "aac"),
    "flac": ("flac", "flac"),
    "wav": ("wav", "pcm_s16le"),
}
_MUXER_OPTIONS: dict[str, dict[str, str]] = {
    # Ogg buffers a second of pages by default: flush a page every 20 ms of audio instead, so each
    # sentence leaves as soon as it is encoded
    "ogg": {"page_duration": "20000"},
}
FORMATS = frozenset({*_CODECS, "pcm"})
__all__ = ["sent_whole"]  # the policy lives in tts_crds.speech: the router sends scripts by it too


class AudioInputError(ValueError):
    """A client-supplied clip that cannot be used (not base64, not audio, too short or long)."""


def output_rate(fmt: str, sample_rate: int) -> int:
    """The rate ``fmt`` is encoded at: the model's own where the codec takes it, else the next one up."""
    if fmt == "pcm":
        return sample_rate
    import av

    rates = av.codec.Codec(_CODECS[fmt][1], "w").audio_rates
    if not rates or sample_rate in rates:
        return sample_rate
    higher = [r for r in rates if r >= sample_rate]
    return min(higher) if higher else max(rates)


class _Sink:
    """A non-seekable write target: muxers write headers for streaming (unknown length) and never seek back."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes | memoryview) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out

    take_all = take


class _File(io.BytesIO):
    """A seekable write target: muxers go back and write the true length into the header at the end."""

    def take(self) -> bytes:
        return b""  # nothing leaves before the file is complete

    def take_all(self) -> bytes:
        return self.getvalue()


class StreamEncoder:
    """Encode a stream of int16 mono chunks into one continuous file of ``fmt``.

    ``feed(chunk)`` returns the bytes ready to send after that chunk (possibly empty), ``finish()``
    the rest. Concatenated, they form one valid file. Streamed, WAV carries the streaming size
    0xFFFFFFFF and FLAC an unknown length, since headers cannot be rewritten after they were sent;
    with ``whole`` the chunks are still encoded as they come, but every byte waits for ``finish()``,
    whose file states its true length. ``rate`` asks for another output rate than the model's
    (the request's ``sample_rate``; the codec's next one up where it does not take that one).
    """

    def __init__(self, fmt: str, sample_rate: int, whole: bool = False, rate: int | None = None) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}")
        self.fmt = fmt
        self.in_rate = sample_rate
        self.rate = output_rate(fmt, rate or sample_rate)
        self._resampler = (
            soxr.ResampleStream(sample_rate, self.rate, 1, dtype="int16") if self.rate != sample_rate else None
        )
        self._samples = 0
        self._container: av.container.OutputContainer | None = None
        if fmt == "pcm":
            return
        import av

        muxer, codec = _CODECS[fmt]
        self._sink: _Sink | _File = _File() if whole else _Sink()
        self._container = av.open(self._sink, mode="w", format=muxer, options=_MUXER_OPTIONS.get(muxer, {}))
        self._stream: av.AudioStream = self._container.add_stream(codec, rate=self.rate, layout="mono")  # type: ignore[assignment]
        if fmt == "mp3":
            self._stream.bit_rate = 64000
        elif fmt in ("opus", "aac"):
            self._stream.bit_rate = 48000

    def _encode(self, samples: np.ndarray | None) -> None:
        import av

        assert self._container is not None
        if samples is None:
            packets = self._stream.encode(None)
        else:
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = self.rate
            frame.pts = self._samples
            self._samples += len(samples)
            packets = self._stream.encode(frame)
        for packet in packets:
            self._container.mux(packet)

    @property
    def light(self) -> bool:
        """Raw pcm at the model's rate: ``feed`` and ``finish`` only copy bytes."""
        return self._container is None and self._resampler is None

    def feed(self, chunk: np.ndarray) -> bytes:
        samples = np.ascontiguousarray(chunk, dtype=np.int16)
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        if self._container is None:
            return samples.astype("<i2", copy=False).tobytes()
        if len(samples):
            self._encode(samples)
        return self._sink.take()

    def finish(self) -> bytes:
        rest = np.zeros(0, dtype=np.int16)
        if self._resampler is not None:  # what the resampler still holds (its filter's delay)
            rest = self._resampler.resample_chunk(rest, last=True)
        if self._container is None:
            return rest.astype("<i2", copy=False).tobytes() if self.fmt == "pcm" else b""
        if len(rest):
            self._encode(rest)
        self._encode(None)
        self._container.close()
        self._container = None
        return self._sink.take_all()

    def close(self) -> None:
        """Release the encoder without finishing the file (the client went away)."""
        if self._container is not None:
            import av

            with contextlib.suppress(av.error.FFmpegError, OSError, ValueError):
                self._container.close()
            self._container = None


def encode(samples: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """Encode a whole int16 mono clip as ``fmt`` in one go (a file that states its length)."""
    enc = StreamEncoder(fmt, sample_rate, whole=True)
    return enc.feed(samples) + enc.finish()


def encode_all(chunks: Iterable[np.ndarray], sample_rate: int, fmt: str, whole: bool = False) -> bytes:
    enc = StreamEncoder(fmt, sample_rate, whole)
    return b"".join(enc.feed(c) for c in chunks) + enc.finish()


# --- tempo and sample rate ----------------------------------------------------------------------


def change_tempo(samples: np.ndarray, sample_rate: int, factor: float) -> np.ndarray:
    """Speak ``factor`` times faster without changing pitch (FFmpeg's atempo, WSOLA)."""
    if abs(factor - 1.0) < 1e-3 or not len(samples):
        return samples
    import av.filter

    # atempo takes 0.5..100 per instance: chain instances for slower factors
    stages: list[float] = []
    rest = factor
    while rest < 0.5:
        stages.append(0.5)
        rest /= 0.5
    stages.append(rest)
    graph = av.filter.Graph()
    node = graph.add_abuffer(format="s16", sample_rate=sample_rate, layout="mono", time_base=Fraction(1, sample_rate))
    src = node
    for stage in stages:
        nxt = graph.add("atempo", f"{stage:.6f}")
        node.link_to(nxt)
        node = nxt
    sink = graph.add("abuffersink")
    node.link_to(sink)
    graph.configure()
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, dtype=np.int16).reshape(1, -1), "s16", "mono")
    frame.sample_rate = sample_rate
    frame.pts = 0
    src.push(frame)
    src.push(None)
    out: list[np.ndarray] = []
    while True:
        try:
            got = sink.pull()
        except (av.error.BlockingIOError, av.error.EOFError):
            break
        assert isinstance(got, av.AudioFrame)
        out.append(got.to_ndarray().reshape(-1))
    return np.concatenate(out).astype(np.int16) if out else np.zeros(0, dtype=np.int16)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Float or int mono samples from one rate to another (libsoxr, high quality)."""
    if from_rate == to_rate:
        return samples
    return soxr.resample(samples, from_rate, to_rate)


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] to int16, clipping what lies outside."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)


# --- reference clips (voice cloning) ------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """Decoded mono float32 audio in [-1, 1]."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


def _decode_sndfile(data: bytes) -> Clip | None:
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        return None
    return Clip(samples.mean(axis=1).astype(np.float32), int(rate))


def _decode_ffmpeg(data: bytes) -> Clip | None:
    import av

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono")
            parts: list[np.ndarray] = []
            rate = 0
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    rate = out.sample_rate
                    parts.append(out.to_ndarray().reshape(-1))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError):
        return None
    if not parts or not rate:
        return None
    return Clip(np.concatenate(parts).astype(np.float32), rate)


def decode_clip(data: bytes) -> Clip:
    """Decode any container libsndfile or FFmpeg reads (wav, flac, ogg, mp3, m4a, …) to mono float: a
    model's own voice files. Reference clips from requests go through :func:`decode_reference`."""
    clip = _decode_sndfile(data) or _decode_ffmpeg(data)
    if clip is None or not len(clip.samples):
        raise AudioInputError("not an audio file that can be decoded (wav, flac, mp3, ogg, …)")
    return clip


def decode_reference(b64: str, min_seconds: float, max_seconds: float, max_bytes: int) -> Clip:
    """Validate and decode a base64 reference clip from a request (the rules of ``tts_crds.clips``)."""
    if len(b64) > max_bytes * 4 // 3 + 4:
        raise AudioInputError(f"ref_audio is larger than {max_bytes // 1_000_000} MB")
    payload = b64.split(",", 1)[1] if b64.startswith("data:") else b64  # tolerate data: URLs
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AudioInputError("ref_audio is not valid base64") from exc
    early = clips.size_problem(len(data), max_bytes)
    if early:
        raise AudioInputError(f"ref_audio: {early.message}")
    try:
        container = sf.info(io.BytesIO(data)).format
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioInputError(
            f"ref_audio is not an audio file that can be decoded (send {clips.FORMATS_TEXT})"
        ) from exc
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    facts = clips.ClipFacts(len(data), container, int(rate), samples.shape[1], len(samples), peak)
    problem = clips.clip_problem(facts, max_bytes, min_seconds, max_seconds)
    if problem:
        raise AudioInputError(f"ref_audio: {problem.message}")
    return Clip(samples.mean(axis=1).astype(np.float32), int(rate))


# --- uploads to transcribe ----------------------------------------------------------------------


def decode_upload(data: bytes, rate: int, max_seconds: float) -> np.ndarray:
    """An uploaded clip in any container FFmpeg reads (wav, mp3, ogg/opus, flac, m4a, webm, …) as mono
    float32 at ``rate``. Decoding stops once the clip is longer than ``max_seconds``: a few
    megabytes of Opus can hold hours, and the limit is what bounds the work, not the file size."""
    import av

    if not data:
        raise AudioInputError("the file is empty")
    limit = int(max_seconds * rate)
    parts: list[np.ndarray] = []
    got = 0
    try:
        with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioInputError("the file has no audio stream")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            frames = container.decode(container.streams.audio[0])
            for frame in itertools.chain(frames, [None]):  # None flushes the resampler
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray().reshape(-1))
                    got += out.samples
                if got > limit:
                    raise AudioInputError(f"the audio is longer than the {max_seconds:g} seconds this server takes")
    except AudioInputError:
        raise
    except (av.error.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise AudioInputError(
            "the file could not be decoded as audio (send wav, mp3, ogg/opus, flac, m4a or webm)"
        ) from exc
    if not got:
        raise AudioInputError("the file could not be decoded as audio: it holds no samples")
    return np.concatenate(parts).astype(np.float32, copy=False)
