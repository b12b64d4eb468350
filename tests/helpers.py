"""Small helpers shared by the test suites: polling and audio checks."""

from __future__ import annotations

import io
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

T = TypeVar("T")

# the tools the kube-tts MCP server offers (tests/component and tests/integration check the list)
MCP_TOOLS = frozenset(
    {
        "synthesize_speech",
        "list_models",
        "list_voices",
        "transcribe_audio",
        "create_voice",
        "delete_voice",
        "get_gpu_status",
        "sleep_model",
        "wake_model",
        "start_production",
        "get_production",
        "list_productions",
    }
)


def eventually(fn: Callable[[], T | None], timeout: float, interval: float = 0.25, what: str = "condition") -> T:
    """Call ``fn`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


@dataclass(frozen=True)
class Audio:
    sample_rate: int
    channels: int
    samples: np.ndarray

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def rms(self) -> float:
        """Root-mean-square level on the int16 scale (silence is ~0, speech is thousands)."""
        if not len(self.samples):
            return 0.0
        return float(np.sqrt(np.mean(self.samples.astype(np.float64) ** 2)))


def decode_wav(data: bytes) -> Audio:
    with wave.open(io.BytesIO(data)) as w:
        assert w.getsampwidth() == 2, "expected 16-bit PCM"
        frames = w.readframes(w.getnframes())
        return Audio(w.getframerate(), w.getnchannels(), np.frombuffer(frames, dtype="<i2"))


def decode_audio(data: bytes, fmt: str | None = None, pcm_rate: int = 22050) -> Audio:
    """Decode any container FFmpeg reads (what browsers and ffprobe use) to int16 mono;
    ``fmt="pcm"`` takes raw s16le at ``pcm_rate``."""
    if fmt == "pcm":
        assert len(data) % 2 == 0, "pcm must be whole 16-bit samples"
        return decode_pcm(data, pcm_rate)
    import av

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        parts = [
            out.to_ndarray().reshape(-1) for frame in container.decode(stream) for out in resampler.resample(frame)
        ]
    return Audio(rate, 1, np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16))


def median_f0(audio: Audio, floor: float = 60.0, ceiling: float = 400.0) -> float:
    """The median pitch (Hz) of the voiced frames of speech: per 40 ms frame (10 ms hop) louder than
    a third of the loudest, the autocorrelation peak between ``floor`` and ``ceiling`` Hz, where it
    is clearly periodic. Enough to tell a low voice from a high one, and a mix from both."""
    x = audio.samples.astype(np.float64) / 32768
    rate = audio.sample_rate
    frame, hop = int(0.04 * rate), int(0.01 * rate)
    starts = range(0, max(len(x) - frame, 0), hop)
    energy = [float(np.sqrt(np.mean(x[i : i + frame] ** 2))) for i in starts]
    lo, hi = int(rate / ceiling), int(rate / floor)
    pitches = []
    for i, level in zip(starts, energy, strict=True):
        if level < 0.3 * max(energy):
            continue
        f = x[i : i + frame] - x[i : i + frame].mean()
        ac = np.correlate(f, f, "full")[frame - 1 :]
        if ac[0] <= 0:
            continue
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] / ac[0] > 0.5:
            pitches.append(rate / lag)
    assert pitches, "no voiced frames"
    return float(np.median(pitches))


def decode_pcm(data: bytes, sample_rate: int) -> Audio:
    return Audio(sample_rate, 1, np.frombuffer(data, dtype="<i2"))


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """A float or int16 mono clip as a WAV file (libsndfile)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, samples, sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


class LiveServer:
    """A real uvicorn server on a loopback port in a thread: for timing and disconnect tests that an
    in-process ASGI transport cannot show."""

    def __init__(self, app) -> None:
        import socket
        import threading

        import uvicorn

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        eventually(lambda: self.server.started, timeout=30, what="uvicorn to start")
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()


def metric(text: str, name: str) -> float:
    """The value of an unlabelled Prometheus sample in /metrics text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in metrics")


def sse_events(stream: bytes) -> list[dict]:
    """The JSON payloads of a server-sent-event stream's ``data:`` lines."""
    import json

    events = []
    for block in stream.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = b"".join(line[5:].strip() for line in block.split(b"\n") if line.startswith(b"data:"))
        if data:
            events.append(json.loads(data))
    return events


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The value of the first sample ``name`` in Prometheus text whose labels include ``labels``, or None."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def fuzz_without_server_errors(url: str, headers: dict[str, str], mode, max_examples: int = 25) -> list[str]:
    """Schemathesis against ``url``/openapi.json: every operation, ``max_examples`` generated
    requests each in ``mode`` (positive or negative), none may be answered with a 5xx. Returns the
    operations tried (an operation with nothing to make invalid is skipped in negative mode)."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error

    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    tried = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(generation_mode=mode, headers=headers))
        @settings(max_examples=max_examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def no_server_error(case):
            case.call_and_validate(checks=[not_a_server_error])

        try:
            no_server_error()
        except Unsatisfiable:
            # nothing in this operation can be made invalid (e.g. GET /healthz has no parameters)
            assert mode == GenerationMode.NEGATIVE, operation.label
            continue
        tried.append(operation.label)
    return tried
