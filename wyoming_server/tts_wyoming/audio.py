"""The router's PCM stream as Wyoming audio events. Pure: bytes in, events out.

The router streams 16-bit mono PCM in network-sized pieces, which may split a sample in two; each
``audio-chunk`` carries whole samples only, at most ``samples_per_chunk`` of them, and whatever is
left waits for the next piece.
"""

from __future__ import annotations

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event

WIDTH = 2  # bytes per sample: the router's pcm is s16le
CHANNELS = 1


class PcmRelay:
    def __init__(self, rate: int, samples_per_chunk: int = 1024) -> None:
        if rate <= 0:
            raise ValueError(f"sample rate must be positive, got {rate}")
        self.rate = rate
        self.max_bytes = samples_per_chunk * WIDTH * CHANNELS
        self._pending = b""
        self.samples = 0  # whole samples sent so far

    def start(self) -> Event:
        return AudioStart(rate=self.rate, width=WIDTH, channels=CHANNELS, timestamp=0).event()

    def _chunk(self, data: bytes) -> Event:
        event = AudioChunk(
            rate=self.rate, width=WIDTH, channels=CHANNELS, audio=data, timestamp=self.samples * 1000 // self.rate
        ).event()
        self.samples += len(data) // (WIDTH * CHANNELS)
        return event

    def feed(self, data: bytes) -> list[Event]:
        """``audio-chunk`` events for the whole samples received so far."""
        buf = self._pending + data
        usable = len(buf) - len(buf) % (WIDTH * CHANNELS)
        self._pending = buf[usable:]
        return [self._chunk(buf[i : min(i + self.max_bytes, usable)]) for i in range(0, usable, self.max_bytes)]

    def stop(self) -> Event:
        """``audio-stop``; a dangling half sample (a broken stream's last byte) is dropped."""
        self._pending = b""
        return AudioStop(timestamp=self.samples * 1000 // self.rate).event()

    @property
    def seconds(self) -> float:
        return self.samples / self.rate
